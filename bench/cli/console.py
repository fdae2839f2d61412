"""Where the command line writes: results on stdout, progress and status on stderr.

``dccsim run smoke > out.txt`` keeps the progress bar on the terminal and the table in the file;
``dccsim sweep ... | cat`` gets whole tables: rich folds a table to 80 columns when it cannot
ask a terminal for its width (``1,198,4...``), so a piped or redirected stdout gets a width no
table of ours reaches, and each table takes only the width it needs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["stdout_console", "stderr_console"]

#: the width of a stdout that is not a terminal: wider than any table the commands print
PIPED_WIDTH = 400


def stdout_console() -> Any:
    """A rich Console for results, on stdout (see the module docstring for its width)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def stderr_console() -> Any:
    """A rich Console for progress and status, on stderr."""
    from rich.console import Console

    return Console(stderr=True)
