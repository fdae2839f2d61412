"""The command line's error types and exit codes.

======  ==========================================================================
code    meaning
======  ==========================================================================
0       success: the run passed its exit criteria
1       the run finished, but an exit criterion (or a regression check) failed, or a
        ``load`` could not offer or account for the load it was asked for
2       bad input: a bad flag, file, scenario, setting or value (one line on stderr;
        nothing was run)
3       aborted: output could not be written (full disk, unwritable path, closed
        stdout) or the run failed part-way; what was already logged is closed as
        valid Arrow streams and the line says where
130     interrupted (Ctrl-C); logs closed as for 3
======  ==========================================================================
"""

from __future__ import annotations

import click

__all__ = ["EXIT_ABORTED", "EXIT_BAD_INPUT", "EXIT_CRITERIA", "EXIT_INTERRUPTED", "CliError", "OutputError"]

EXIT_CRITERIA = 1
EXIT_BAD_INPUT = 2
EXIT_ABORTED = 3
EXIT_INTERRUPTED = 130


class CliError(click.ClickException):
    """A user error: one line on stderr, exit code 2."""

    exit_code = EXIT_BAD_INPUT


class OutputError(click.ClickException):
    """Output that could not be written, or a run aborted part-way: one line, exit code 3."""

    exit_code = EXIT_ABORTED
