"""Run folders are never silently overwritten.

A folder that already holds a run (its ``marker`` file: ``summary.json``, ``sweep.json``, a
log) is replaced only with ``--force``. Without it, a folder the user named with ``--out`` is
refused (one line, exit 2, before any work), and a default folder (``runs/NAME-...``) gives
way to the next free ``NAME-...-2``, ``-3`` ...
"""

from __future__ import annotations

from pathlib import Path

import click

from .errors import CliError

__all__ = ["FORCE_OPTION", "check_creatable", "fresh_out"]

#: what marks a folder as holding a run's results (any of them)
MARKERS = ("summary.json", "sweep.json", "replicates.json", "requests.arrow", "tuning.arrow", "alerts.arrow")

FORCE_OPTION = click.option(
    "--force", is_flag=True, help="Replace the results already in the run folder (else a named --out that holds "
    "a run is refused, and a default one becomes NAME-2, NAME-3 ...).",
)  # fmt: skip


def _holds_run(folder: Path) -> bool:
    return folder.is_dir() and any((folder / m).exists() for m in MARKERS)


def fresh_out(given: Path | None, default: Path, force: bool) -> Path:
    """The run folder to write: ``given`` or ``default``, by the rule in the module docstring."""
    if force:
        return given or default
    if given is not None:
        if _holds_run(given):
            raise CliError(f"--out: {given} holds a run already; give --force to replace it, or another --out")
        return given
    if not _holds_run(default):
        return default
    for k in range(2, 10_000):
        candidate = default.with_name(f"{default.name}-{k}")
        if not _holds_run(candidate):
            return candidate
    raise CliError(f"--out: {default}-2 to -9999 all hold runs; give --out or --force")


def check_creatable(folder: Path) -> None:
    """A folder that exists and is writable, or can be made in the nearest existing one: else
    one line naming it (nothing is created here)."""
    import tempfile

    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(f"{probe} is not a folder")
        Path(tempfile.mkdtemp(prefix=".dccsim-check-", dir=probe)).rmdir()  # as root, access() says yes to all
    except OSError as exc:
        raise CliError(f"--out: got {str(folder)!r}, expected a folder dccsim can create and write "
                       f"({exc.strerror or exc})") from None  # fmt: skip
