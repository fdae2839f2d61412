"""Run the ``dccsim`` command line in-process, as the tests of its commands do."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
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


def decode_to_xml(
    messages: Sequence[Any], tmp_path: Path, xsd: Path, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    """``dccsim decode FILE --to xml --schema XSD`` of ``messages`` written as JSON lines: the
    XML documents it printed (its exit code must be 0)."""
    src = tmp_path / "messages.jsonl"
    src.write_bytes(b"".join(msgspec.json.encode(m) + b"\n" for m in messages))
    code, stdout, err = cli("decode", str(src), "--to", "xml", "--schema", str(xsd), capsys=capsys)
    assert code == 0, err
    return ["<?xml" + d for d in stdout.split("<?xml") if d.strip()]
