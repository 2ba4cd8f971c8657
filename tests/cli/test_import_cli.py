"""``salesops import FILE`` against a real local HTTP server whose ``POST /v1/imports`` parses
the streamed body with the real CSV parser and answers an import report."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from salesops_cli.importer import kind_from_name, run_import
from salesops_cli.infra import free_port
from salesops_cli.main import main
from salesops_ingest.connectors.csv_import import CsvFormatError, CsvImport, RowError

pytestmark = pytest.mark.unit

TOKEN = "import-test-token"


@dataclass
class Received:
    """What the fake endpoint saw of each request."""

    params: list[dict[str, str]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


def fake_ingest(received: Received) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/imports")
    async def imports(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse(
                {"error": {"code": "unauthenticated", "message": "bad bearer token"}}, 401
            )
        received.params.append(dict(request.query_params))
        received.headers.append(dict(request.headers))
        body = bytearray()
        chunks = 0

        async def stream() -> Any:
            nonlocal chunks
            async for chunk in request.stream():
                if chunk:
                    chunks += 1
                    body.extend(chunk)
                    yield chunk

        import_id = uuid.uuid4().hex[:8]
        try:
            rows = CsvImport(
                stream(),
                kind=request.query_params["kind"],
                tenant=request.query_params["tenant"],
                import_id=import_id,
                received_at=datetime.now(UTC),
            )
            await rows.read_header()
            accepted, errors = 0, []
            async for item in rows:
                if isinstance(item, RowError):
                    errors.append(
                        {"row": item.row, "error": item.error, "source_id": item.source_id}
                    )
                else:
                    accepted += 1
        except CsvFormatError as exc:
            return JSONResponse({"error": {"code": "invalid", "message": str(exc)}}, 422)
        received.chunks.append(chunks)
        received.bodies.append(bytes(body))
        report = {
            "import_id": import_id,
            "rows": rows.rows,
            "accepted": accepted,
            "unchanged": 0,
            "merged": 0,
            "errors": errors,
            "ignored_columns": rows.ignored_columns,
        }
        return JSONResponse(report)

    return app


@dataclass
class Server:
    url: str
    received: Received


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    received = Received()
    port = free_port()
    config = uvicorn.Config(
        fake_ingest(received), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    yield Server(f"http://127.0.0.1:{port}", received)
    uv.should_exit = True
    thread.join(10)


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SALESOPS_API_TOKEN", raising=False)
    monkeypatch.setenv("SALESOPS_HOME", str(tmp_path / "home"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_large_file_is_streamed_and_a_clean_report_exits_0(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["Record ID,E-mail,Company Name,Favourite Colour"]
    lines += [f'L-{n},u{n}@example.com,"Acme, {n}",blue' for n in range(5000)]
    path = write(tmp_path, "leads-2026.csv", "\r\n".join(lines) + "\r\n")
    assert path.stat().st_size > 3 * 64 * 1024
    before = len(server.received.bodies)

    code = main(["import", str(path), "--url", server.url, "--token", TOKEN])

    out = capsys.readouterr().out
    assert code == 0
    assert server.received.bodies[before] == path.read_bytes()
    assert server.received.chunks[before] > 1  # streamed, not one body
    headers = server.received.headers[before]
    assert headers["content-type"] == "text/csv"
    assert headers.get("transfer-encoding") == "chunked"
    assert server.received.params[before] == {"kind": "lead", "tenant": "default"}
    assert "leads-2026.csv (lead, import " in out
    assert "5000 rows, 5000 accepted, 0 unchanged, 0 merged, 0 failed" in out
    assert "ignored columns: Favourite Colour" in out


def test_failed_rows_exit_1_and_at_most_20_are_listed(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["source_id,name"] + ["A-1,Acme"] + [f",nameless {n}" for n in range(25)]
    path = write(tmp_path, "import.csv", "\n".join(rows) + "\n")

    code = run_import(path, kind="account", tenant="t9", url=server.url, token=TOKEN)

    out = capsys.readouterr().out
    assert code == 1
    assert server.received.params[-1] == {"kind": "account", "tenant": "t9"}
    assert "26 rows, 1 accepted, 0 unchanged, 0 merged, 25 failed" in out
    assert "  row 2: no id (source_id is empty)" in out
    assert "  row 21: " in out
    assert "  row 22: " not in out
    assert "... and 5 more failed rows" in out


def test_the_token_defaults_to_the_dev_token_file(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "api-token").write_text(TOKEN + "\n")
    path = write(tmp_path, "Deals.csv", "Opportunity ID,Deal Stage\nD-1,Won\n")

    assert run_import(path, url=server.url) == 0
    assert server.received.params[-1]["kind"] == "deal"
    assert "1 rows, 1 accepted" in capsys.readouterr().out


def test_http_errors_exit_2_with_the_servers_message(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "accounts.csv", "source_id,name\nA-1,Acme\n")
    assert run_import(path, url=server.url, token="wrong") == 2
    assert "import failed: HTTP 401: bad bearer token" in capsys.readouterr().err

    no_id = write(tmp_path, "accounts2.csv", "name\nAcme\n")
    assert run_import(no_id, url=server.url, token=TOKEN) == 2
    assert "import failed: HTTP 422: no id column" in capsys.readouterr().err


def test_connection_errors_and_unusable_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "activities.csv", "id,type\nX-1,call\n")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert run_import(path, url=url, token=TOKEN) == 2
    assert f"import failed: cannot reach {url}/v1/imports" in capsys.readouterr().err

    assert run_import(path, url=url) == 2  # no env token, no token file
    assert "no API token" in capsys.readouterr().err

    other = write(tmp_path, "export.csv", "id\n1\n")
    assert run_import(other, url=url, token=TOKEN) == 2
    assert "pass --kind" in capsys.readouterr().err

    assert run_import(tmp_path / "missing-leads.csv", url=url, token=TOKEN) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("leads.csv", "lead"),
        ("2026-LEAD-export.csv", "lead"),
        ("accounts.csv", "account"),
        ("sales_pipeline_deals.csv", "deal"),
        ("opportunities.csv", "deal"),
        ("activities.csv", "activity"),
        ("activity.csv", "activity"),
        ("deal_accounts.csv", None),
        ("export.csv", None),
    ],
)
def test_kind_from_file_name(name: str, kind: str | None) -> None:
    assert kind_from_name(Path("/data") / name) == kind
