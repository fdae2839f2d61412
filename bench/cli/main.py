"""The ``dccsim`` command line: the click group and the entry point.

Every subcommand lives in its own module (``bench/cli/cmd_*.py``) and is imported only when
it is invoked, so ``dccsim --help`` stays fast and importing this module compiles nothing.
The commands import :class:`~dccsim.bench.cli.errors.CliError` from a module of its own, so
no command imports this one (the registry below points down, by name, and nothing points
back).

Errors follow one rule: a bad flag, a bad file or a bad config prints **one line** on stderr
(``dccsim <command>: error: ...``) and exits with code 2; a failed exit criterion or
regression exits 1; output that cannot be written (full disk, closed stdout) exits 3 with one
line; Ctrl-C exits 130; success exits 0 (the table is in :mod:`dccsim.bench.cli.errors`).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from .errors import EXIT_ABORTED, EXIT_BAD_INPUT, EXIT_INTERRUPTED

#: command name -> "module:attribute" of a click.Command, imported lazily.
COMMANDS: dict[str, str] = {
    "decode": "dccsim.bench.cli.cmd_decode:decode",
    "demo": "dccsim.bench.cli.cmd_decode:demo",
    "srvs": "dccsim.bench.cli.cmd_decode:srvs",
    "run": "dccsim.bench.cli.cmd_run:run",
    "scenarios": "dccsim.bench.cli.cmd_run:scenarios",
    "sweep": "dccsim.bench.cli.cmd_run:sweep",
    "report": "dccsim.bench.cli.cmd_report:report",
    "compare": "dccsim.bench.cli.cmd_report:compare",
    "check": "dccsim.bench.cli.cmd_report:check",
    "export": "dccsim.bench.cli.cmd_report:export",
    "throttle": "dccsim.bench.cli.cmd_throttle:throttle",
    "tune-throttle": "dccsim.bench.cli.cmd_throttle:tune_throttle",
    "make-alert-trace": "dccsim.bench.cli.cmd_throttle:make_alert_trace",
    "serve": "dccsim.bench.cli.cmd_serve:serve",
    "load": "dccsim.bench.cli.cmd_serve:load",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dccsim", prog_name="dccsim")
def cli() -> None:
    """dccsim: a high-throughput simulator of the DCC smart-metering message core."""


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``dccsim`` console script."""
    args = sys.argv[1:] if argv is None else argv
    try:
        return cli.main(args=args, prog_name="dccsim", standalone_mode=False)
    except click.exceptions.Abort:
        _say("dccsim: interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except click.UsageError as exc:
        name = exc.ctx.command_path if exc.ctx is not None else "dccsim"
        click.echo(f"{name}: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        _say(f"dccsim: error: {exc.format_message()}")
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:
        # output a command did not catch itself (stdout closed or full, a file that became
        # unwritable): one line, exit 3; a command that writes logs closes them first
        where = f" {exc.filename}" if exc.filename else (" stdout" if _is_stdout_error(exc) else "")
        _say(f"dccsim: error: cannot write{where}: {exc.strerror or exc}")
        sys.exit(EXIT_ABORTED)
    except Exception as exc:
        from dccsim.core.errors import ConfigError  # here, not at the top: it loads the core

        if not isinstance(exc, ConfigError):
            raise
        # a bad scenario, criterion or setting that a command let through: still one line
        _say(f"dccsim: error: {exc}")
        sys.exit(EXIT_BAD_INPUT)


def _is_stdout_error(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.EPIPE, errno.ENOSPC, errno.EBADF) and exc.filename is None


def _say(line: str) -> None:
    """One line on stderr; if stderr itself is gone, nothing (the exit code still tells)."""
    try:
        click.echo(line, err=True)
    except OSError:
        pass
