"""The command line's one error type: a user error is one line on stderr and exit code 2."""

from __future__ import annotations

import click

__all__ = ["CliError"]


class CliError(click.ClickException):
    """A user error: one line on stderr, exit code 2."""

    exit_code = 2
