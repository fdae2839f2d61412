"""``dccsim decode``: convert DUIS XML, JSON and MessagePack messages; ``dccsim srvs``.

Input formats are detected per file (:func:`dccsim.core.wire.decode_file`): DUIS XML (one
``sr:Request``), JSON (one message or an array of messages), JSON lines (one message a
line), MessagePack (one message, an array of messages, or a compact request batch of
``RequestRow`` arrays).

Every format is held to the DUIS schema (:func:`dccsim.core.wire.decode_file`): dccsim's own
checks always, and the DUIS XSD for XML documents (and generic request bodies from JSON and
MessagePack) unless ``--no-schema``; the XSD is ``--schema``, else ``DCCSIM_DUIS_XSD``, else
the first found of :func:`dccsim.core.duisxml.default_schema_paths` (none found: one note on
stderr). ``--validate`` adds validation and access control for every request and compact row.

Good messages are written to stdout as soon as their file is read; every bad message gets
one line on stderr naming the file, the field, the value and what was expected, and the
command exits 2 at the end. An input that is not a readable regular file (missing, a FIFO, a
device, unreadable) is one line and exit 2 before anything is read from it (``-`` reads
stdin); stdout that cannot be written (full, closed) is one line and exit 3.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import click
import msgspec
from dccsim.core import duisxml, wire
from dccsim.core.errors import ConfigError, MessageError
from dccsim.core.eui import int_to_eui
from dccsim.core.messages import Message, RequestRow, ServiceRequest
from dccsim.core.records import ROLES

from .console import stdout_console
from .errors import CliError, OutputError

__all__ = ["decode", "srvs", "demo"]

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def _check_input(path: Path) -> None:
    """:class:`CliError` unless ``path`` is ``-`` or a regular file; nothing is opened, so a
    FIFO with no writer cannot block."""
    if str(path) == "-":
        return
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        what = "not found" if exc.errno == errno.ENOENT else f"cannot be read ({exc.strerror})"
        raise CliError(f"{path}: file: {what}, expected a readable file (or - for stdin)") from None
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise CliError(f"{path}: file: got {kind}, expected a regular file (or - for stdin)")


def _read_input(path: Path) -> bytes:
    """The bytes of ``path`` (stdin for ``-``); :class:`CliError` naming it when they cannot be read."""
    try:
        if str(path) == "-":
            return sys.stdin.buffer.read()
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"{path}: file: cannot read ({exc.strerror or exc}), expected a readable file") from None


def _write_stdout(out: object, data: bytes | None = None) -> None:
    """Write ``data`` to stdout, or flush it when there is none; :class:`OutputError` (exit 3)
    when stdout is full or closed. stdout then points at the null device, so that the
    interpreter's flush at exit finds nothing to complain about (what the Python docs advise
    for a broken pipe)."""
    try:
        if data is None:
            out.flush()  # type: ignore[attr-defined]
        else:
            view = memoryview(data)
            while view:  # a large write to a pipe whose reader left can come back short, not failed
                view = view[out.write(view) :]  # type: ignore[attr-defined]
    except OSError as exc:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        raise OutputError(f"cannot write stdout: {exc.strerror or exc}") from None


def _schema(schema: str | None, no_schema: bool) -> tuple[object | None, str | None]:
    """The DUIS XSD decode checks against, and a note to print when XML meets none.

    ``--schema PATH``, else ``DCCSIM_DUIS_XSD``, else the first of the default places that has
    it (:func:`dccsim.core.duisxml.default_schema_paths`); ``--no-schema``: none. A path named
    by the flag or the variable that cannot be loaded is :class:`CliError` (exit 2).
    """
    if no_schema:
        if schema:
            raise CliError(f"--schema {schema}: given with --no-schema; expected one of them")
        return None, None
    env = os.environ.get("DCCSIM_DUIS_XSD")
    if schema or env:
        where, path = ("--schema", schema) if schema else ("DCCSIM_DUIS_XSD", env)
        try:
            return duisxml.load_schema(path), None
        except (ConfigError, OSError) as exc:
            raise CliError(f"{where} {path}: {exc}") from None
    found = duisxml.find_schema_path()
    if found is None:
        places = ", ".join(str(p) for p in duisxml.default_schema_paths())
        return None, (
            f"dccsim decode: note: no DUIS schema found (--schema, DCCSIM_DUIS_XSD, {places}); "
            "XML is held to dccsim's own checks only (--no-schema says so and silences this)"
        )
    try:
        return duisxml.load_schema(str(found)), None
    except (ConfigError, OSError) as exc:
        raise CliError(f"DUIS schema {found}: {exc}; pass --schema, set DCCSIM_DUIS_XSD or --no-schema") from None


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--to",
    "to",
    type=click.Choice(["json", "msgpack", "xml"]),
    default="json",
    show_default=True,
    help="Output format: JSON lines, one MessagePack array, or DUIS XML documents.",
)
@click.option(
    "--validate",
    is_flag=True,
    help="Also run validation and access control (roles, replay, registry, device type) on every request and "
    "compact row; rejected ones are errors.",
)
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default=None,
    help="User role to assume for requests that carry none (DUIS XML never does).",
)
@click.option(
    "--generation",
    type=click.Choice(["SMETS1", "SMETS2"]),
    default=None,
    help="With --validate: the SMETS generation (SMETS2 = SMETS2+) of the devices 8.11 requests add, for "
    "CR1277's install code lengths (without it only the schema's 6-16 bytes apply).",
)
@click.option(
    "--schema",
    type=click.Path(dir_okay=False),
    default=None,
    help="DUIS XSD to check XML read and written against (default: DCCSIM_DUIS_XSD, else the schema found "
    "beside the install or the checkout).",
)
@click.option("--no-schema", is_flag=True, help="Check no XML against the DUIS XSD (dccsim's own checks still apply).")
def decode(
    files: tuple[Path, ...],
    to: str,
    validate: bool,
    role: str | None,
    generation: str | None,
    schema: str | None,
    no_schema: bool,
) -> None:
    """Convert Service Requests, Responses and Alerts between DUIS XML, JSON and MessagePack."""
    out = sys.stdout.buffer
    errors = 0
    from dccsim.core.validation import Validator  # here: it loads numba, which --help need not

    if generation is not None and not validate:
        raise CliError(f"--generation {generation}: given without --validate; expected it with --validate")
    validator = Validator(generation=generation) if validate else None
    xsd, note = _schema(schema, no_schema)
    packed: list[Message | RequestRow] = []

    def bad(path: Path, text: str) -> None:
        nonlocal errors
        errors += 1
        click.echo(f"{path}: {text}", err=True)

    for path in files:
        _check_input(path)
    for path in files:
        data = _read_input(path)
        if note is not None and (to == "xml" or wire.detect_format(data) == "xml"):
            click.echo(note, err=True)
            note = None
        for item in wire.decode_file(data, xsd):
            if isinstance(item, MessageError):
                bad(path, str(item))
                continue
            if isinstance(item, ServiceRequest) and role is not None and item.role is None:
                item = msgspec.structs.replace(item, role=role)  # type: ignore[arg-type]
            elif isinstance(item, RequestRow) and role is not None and not item.role:
                item = msgspec.structs.replace(item, role=role)
            if validator is not None and isinstance(item, ServiceRequest | RequestRow):
                try:
                    if isinstance(item, ServiceRequest):
                        which, verdict = f"request {item.request_id}", validator.check(item)
                    else:
                        which = f"row {int_to_eui(item.originator)}:{int_to_eui(item.target)}:{item.counter}"
                        verdict = validator.check_row(item)
                except MessageError as err:  # a value the decoder let through and validation cannot read
                    bad(path, f"{which}: {err}")
                    continue
                if not verdict.ok:
                    bad(path, f"{which}: {verdict.code}: {verdict.reason}")
                    continue
            try:
                if to == "json":
                    data = wire.encode_json(item) + b"\n"
                elif to == "msgpack":
                    packed.append(item)
                    continue
                else:
                    data = duisxml.encode_xml(item, xsd)
            except MessageError as err:
                bad(path, str(err))
                continue
            _write_stdout(out, data)
        _write_stdout(out)
    if to == "msgpack":
        _write_stdout(out, wire.encode_msgpack(packed))
        _write_stdout(out)
    if errors:
        click.echo(f"dccsim decode: {errors} bad message(s)", err=True)
        raise SystemExit(2)


@click.command()
@click.option("--cacheable", is_flag=True, help="Only the SRVs the readings cache serves.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON array on stdout: srv, name, critical, command_variants, roles, future_dated and the "
                   "rest of each SRV's facts.")  # fmt: skip
def srvs(cacheable: bool, as_json: bool) -> None:
    """List the Service Request Variants dccsim knows."""
    from dccsim.core.catalogue import catalogue

    infos = [i for i in catalogue() if i.cacheable or not cacheable]
    if as_json:
        import msgspec

        click.echo(msgspec.json.encode(infos).decode())
        return
    from rich.table import Table

    table = Table("SRV", "name", "critical", "CV", "future-dated", "non-device", "roles", "cache")
    for info in infos:
        table.add_row(
            info.srv,
            info.name,
            "yes" if info.critical else "",
            ",".join(map(str, info.command_variants)),
            info.future_dated,
            "yes" if info.non_device else "",
            " ".join(info.roles),
            "yes" if info.cacheable else "",
        )
    stdout_console().print(table)


def _example_places() -> tuple[Path, ...]:
    import sys

    return (
        Path(__file__).resolve().parents[2] / "examples" / "requests",  # a checkout (editable install)
        Path(sys.prefix) / "share" / "dccsim" / "examples" / "requests",  # installed from a wheel
    )


_EXAMPLE_PLACES = _example_places()


def example_folder() -> Path | None:
    """Where the example messages are: the repository's examples/requests, or the copy a wheel
    installs under ``share/dccsim/examples/requests``; None when neither is there."""
    return next((p for p in _example_places() if p.is_dir()), None)


@click.command()
@click.option(
    "--examples",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Folder of messages to decode (default: the examples shipped in the repository).",
)
def demo(examples: Path | None) -> None:
    """Decode and validate the example messages, and show what each gives."""
    from rich.table import Table

    folder = examples or example_folder()
    if folder is None or not folder.is_dir():
        raise click.UsageError(f"--examples: folder {folder or _EXAMPLE_PLACES[0]} not found")
    table = Table("file", "format", "request", "SRV", "role", "verdict", title="dccsim: DUIS messages in, verdicts out")
    from dccsim.core.validation import Validator

    validator = Validator()
    for path in sorted(folder.iterdir()):
        if not path.is_file():  # a FIFO or a device would block or never end
            continue
        data = path.read_bytes()
        fmt = wire.detect_format(data)
        for item in wire.decode_file(data):
            if isinstance(item, MessageError):
                table.add_row(path.name, fmt, "", "", "", f"[red]{item.code}[/]: {item}")
                continue
            if not isinstance(item, ServiceRequest):
                continue
            if item.role is None:
                item = msgspec.structs.replace(item, role="IS")
            verdict = validator.check(item)
            shown = "[green]I0 accepted[/]" if verdict.ok else f"[red]{verdict.code}[/]: {verdict.reason}"
            table.add_row(path.name, fmt, f"{item.request_id.counter}", item.srv, item.role or "", shown)
    stdout_console().print(table)
