"""``salesops import FILE``: stream a CSV file to ingest's ``POST /v1/imports``.

The file is sent as it is read (64 KiB chunks, no read timeout: the server answers once every
row is processed), then the server's report is printed. Exit codes: 0 every row imported,
1 some rows failed (listed, up to 20), 2 the import did not run (unreadable file, unknown
kind, no token, connection or HTTP error: the server's message is printed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # imported when used: `salesops` starts without it
    import httpx

KINDS = ("lead", "account", "deal", "activity")
CHUNK_BYTES = 64 * 1024
MAX_LISTED_ERRORS = 20
# Words in a file name that say its kind ("activities" has no "activity").
_NAME_HINTS = {
    "lead": ("lead",),
    "account": ("account",),
    "deal": ("deal", "opportunit"),
    "activity": ("activit",),
}


class ImportFailed(Exception):
    """The import did not run (exit code 2)."""


def kind_from_name(path: Path) -> str | None:
    """The kind a file name names (``leads-2026.csv`` -> ``lead``), None if none or several."""
    name = path.name.lower()
    found = [kind for kind, hints in _NAME_HINTS.items() if any(h in name for h in hints)]
    return found[0] if len(found) == 1 else None


def file_chunks(path: Path, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


def server_message(response: httpx.Response) -> str:
    """The error message of a response: ``{"error": {"message"}}``, FastAPI's ``detail``,
    else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if body.get("detail"):
            return str(body["detail"])
    text = response.text.strip()
    return text[:500] if text else response.reason_phrase


def post_import(
    path: Path,
    *,
    kind: str,
    tenant: str,
    url: str,
    token: str,
    transport: httpx.BaseTransport | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> dict[str, Any]:
    """Stream ``path`` to ``POST {url}/v1/imports`` and return the report.
    Raises :class:`ImportFailed` when no report comes back."""
    import httpx

    endpoint = url.rstrip("/") + "/v1/imports"
    timeout = httpx.Timeout(connect=10.0, read=None, write=None, pool=10.0)
    headers = {"Content-Type": "text/csv", "Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.post(
                endpoint,
                params={"kind": kind, "tenant": tenant},
                content=file_chunks(path, chunk_bytes),
                headers=headers,
            )
    except httpx.HTTPError as exc:
        raise ImportFailed(f"cannot reach {endpoint}: {exc or type(exc).__name__}") from None
    except OSError as exc:
        raise ImportFailed(f"cannot read {path}: {exc.strerror or exc}") from None
    if response.status_code != 200:
        raise ImportFailed(f"HTTP {response.status_code}: {server_message(response)}")
    try:
        report = response.json()
    except ValueError:
        report = None
    if not isinstance(report, dict):
        raise ImportFailed("the server's answer is not an import report")
    return report


def print_report(report: dict[str, Any], path: Path, kind: str, out: TextIO) -> int:
    """Print the totals and up to 20 row errors; the exit code (0 no errors, 1 some)."""
    errors = report.get("errors") or []
    print(
        f"{path.name} ({kind}, import {report.get('import_id', '?')}): "
        f"{report.get('rows', 0)} rows, {report.get('accepted', 0)} accepted, "
        f"{report.get('unchanged', 0)} unchanged, {report.get('merged', 0)} merged, "
        f"{len(errors)} failed",
        file=out,
    )
    ignored = report.get("ignored_columns") or []
    if ignored:
        print(f"ignored columns: {', '.join(str(c) for c in ignored)}", file=out)
    for error in errors[:MAX_LISTED_ERRORS]:
        where = f"row {error.get('row', '?')}"
        if error.get("source_id"):
            where += f" ({error['source_id']})"
        print(f"  {where}: {error.get('error', '')}", file=out)
    if len(errors) > MAX_LISTED_ERRORS:
        print(f"  ... and {len(errors) - MAX_LISTED_ERRORS} more failed rows", file=out)
    return 1 if errors else 0


def run_import(
    path: Path,
    *,
    kind: str | None = None,
    tenant: str = "default",
    url: str | None = None,
    token: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """The whole command; ``url`` defaults to ingest's address, ``token`` to
    ``SALESOPS_API_TOKEN`` or the dev token ``salesops up`` keeps. Returns the exit code."""
    from salesops_cli.main import api_token, service_url

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        kind = kind or kind_from_name(path)
        if kind is None:
            raise ImportFailed(
                f"cannot tell the kind from the file name {path.name!r}: "
                f"pass --kind ({', '.join(KINDS)})"
            )
        if kind not in KINDS:
            raise ImportFailed(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
        if not path.is_file():
            raise ImportFailed(f"cannot read {path}: no such file")
        if token is None:
            try:
                token = api_token(create=False)
            except SystemExit as exc:
                raise ImportFailed(str(exc.code)) from None
        report = post_import(
            path,
            kind=kind,
            tenant=tenant,
            url=url or service_url("ingest"),
            token=token,
            transport=transport,
        )
    except ImportFailed as exc:
        print(f"import failed: {exc}", file=err)
        return 2
    return print_report(report, path, kind, out)


def cmd_import(args: argparse.Namespace) -> int:
    return run_import(args.file, kind=args.kind, tenant=args.tenant, url=args.url, token=args.token)


def add_import_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``salesops import`` on the subcommand parsers of ``salesops``."""
    p = sub.add_parser(
        "import", help="stream a CSV file of records to ingest (back-fills, migrations)"
    )
    p.add_argument("file", type=Path, help="CSV file with a header row and an id column")
    p.add_argument(
        "--kind", choices=KINDS, help="record kind (default: from the file name, e.g. leads.csv)"
    )
    p.add_argument("--tenant", default="default")
    p.add_argument("--url", help="ingest's base URL (default: the local stack's ingest)")
    p.add_argument(
        "--token",
        help="API token (default: SALESOPS_API_TOKEN, else the token `salesops up` wrote)",
    )
    p.set_defaults(func=cmd_import)
