"""Run the ``dccsim`` command line in-process, as the tests of its commands do."""

from __future__ import annotations

import pytest
from dccsim.bench.cli import main


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``dccsim ARGS``: its exit code, stdout and stderr."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
