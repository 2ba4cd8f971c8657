"""The ``salesops`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from salesops_cli.forecast_ops import add_forecast_commands
from salesops_cli.importer import add_import_command
from salesops_cli.ingest_ops import add_ingest_commands

SERVICES = ("ingest", "routing", "metrics", "forecast")
DEFAULT_PORTS = {"ingest": 8001, "routing": 8002, "metrics": 8003, "forecast": 8004}


def service_port(name: str) -> int:
    return int(os.environ.get(f"SALESOPS_{name.upper()}_PORT", DEFAULT_PORTS[name]))


def service_url(name: str) -> str:
    host = os.environ.get("SALESOPS_HTTP_HOST", "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{host}:{service_port(name)}"


def data_root() -> Path:
    return Path(os.environ.get("SALESOPS_HOME", ".salesops")).resolve()


def api_token(*, create: bool) -> str:
    """The token from the environment, else the dev token kept under .salesops/."""
    token = os.environ.get("SALESOPS_API_TOKEN")
    if token:
        return token
    path = data_root() / "api-token"
    if path.exists():
        return path.read_text().strip()
    if not create:
        raise SystemExit("no API token: set SALESOPS_API_TOKEN or start the stack first")
    path.parent.mkdir(parents=True, exist_ok=True)
    token = "dev-" + secrets.token_urlsafe(24)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


# How `salesops serve` runs uvicorn (the abuse tests serve ingest the same way).
SERVER_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "loop": "uvloop",
    "http": "httptools",
    "timeout_graceful_shutdown": 10,
    "backlog": 4096,
}


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from salesops_cli.services import create_service_app

    options = dict(SERVER_OPTIONS)
    if args.workers > 1:
        # Each worker is a full copy of the service: same database and consumer group,
        # one outbox relay among them (advisory lock).
        host = os.environ.get("SALESOPS_HTTP_HOST", "127.0.0.1")
        target = f"salesops_cli.services:{args.service}_app"
        uvicorn.run(
            target,
            factory=True,
            host=host,
            port=service_port(args.service),
            workers=args.workers,
            **options,
        )
        return 0
    app, host, port = create_service_app(args.service)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options)).run()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from salesops_cli.stack import Stack

    token = api_token(create=True)
    stack = Stack(root=data_root(), token=token, services=args.services or list(SERVICES))
    return stack.run()


def cmd_demo(args: argparse.Namespace) -> int:
    from salesops_cli.demo import run_demo

    asyncio.run(
        run_demo(
            ingest_url=service_url("ingest"),
            forecast_url=service_url("forecast"),
            routing_url=service_url("routing"),
            metrics_url=service_url("metrics"),
            api_token=api_token(create=False),
            shift_dates=not args.keep_dates,
        )
    )
    return 0


def cmd_republish(args: argparse.Namespace) -> int:
    from salesops_cli.services import republish

    since = datetime.fromisoformat(args.since)
    if since.tzinfo is None:
        raise SystemExit("--since needs a timezone offset, e.g. 2026-11-28T00:00:00+00:00")
    counts = asyncio.run(republish(since, args.services or list(SERVICES)))
    for service, count in counts.items():
        print(f"{service}: {count} events marked for re-publication")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="salesops", description="salesops: sales-ops backend")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start PostgreSQL, the broker and every service")
    up.add_argument("--only", dest="services", action="append", choices=SERVICES)
    up.set_defaults(func=cmd_up)
    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="copies of the service in worker processes on one port",
    )
    serve.set_defaults(func=cmd_serve)
    demo = sub.add_parser("demo", help="load the Maven CRM sample into a running stack")
    demo.add_argument("--keep-dates", action="store_true", help="do not shift dates to today")
    demo.set_defaults(func=cmd_demo)
    rep = sub.add_parser("republish", help="re-publish outbox history (after broker loss)")
    rep.add_argument("--since", required=True, help="RFC 3339 time, e.g. 2026-11-28T00:00Z")
    rep.add_argument("--service", dest="services", action="append", choices=SERVICES)
    rep.set_defaults(func=cmd_republish)
    add_import_command(sub)
    add_forecast_commands(sub)
    add_ingest_commands(
        sub, default_url=service_url("ingest"), token=lambda: api_token(create=False)
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
