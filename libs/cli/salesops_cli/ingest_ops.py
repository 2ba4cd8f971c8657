"""``salesops ingest replay|sync|dead-letters``: operating a running ingest over its REST API."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any, TextIO


def _call(method: str, path: str, *, url: str, token: str, body: Any = None) -> Any:
    import httpx

    try:
        with httpx.Client(base_url=url, timeout=httpx.Timeout(300.0, connect=10.0)) as client:
            response = client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
    except httpx.HTTPError as exc:
        raise SystemExit(f"cannot reach ingest at {url}: {exc or type(exc).__name__}") from None
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:500]
        raise SystemExit(f"ingest answered {response.status_code}: {message}")
    return response.json()


def _since(value: str) -> str:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a timezone offset, e.g. 2026-11-28T00:00:00+00:00")
    return moment.isoformat()


def cmd_replay(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    body = {"since": args.since, "until": args.until, "source": args.source}
    answer = _call("POST", "/v1/replays", url=args.url, token=args.token, body=body)
    print(
        f"{answer['deliveries']} archived deliveries queued for re-normalization; "
        "follow progress with GET /v1/deliveries/status",
        file=out,
    )
    return 0


def cmd_sync(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    body = {"sources": args.sources} if args.sources else None
    answer = _call("POST", "/v1/syncs", url=args.url, token=args.token, body=body)
    for source, records in answer["records"].items():
        print(f"{source}: {records} records read", file=out)
    return 0


def cmd_dead_letters(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.retry:
        answer = _call("POST", "/v1/dead-letters/retry", url=args.url, token=args.token)
        print(json.dumps(answer), file=out)
        return 0 if answer["open"] == 0 else 1
    answer = _call("GET", "/v1/dead-letters", url=args.url, token=args.token)
    print(f"{answer['total']} open dead letters", file=out)
    for item in answer["items"]:
        print(f"  #{item['id']} {item['source']} {item['item_key']}: {item['reason']}", file=out)
    return 0


def add_ingest_commands(sub: Any, *, default_url: str, token: Any) -> None:
    ingest = sub.add_parser(
        "ingest", help="operate a running ingest (replays, syncs, dead letters)"
    )
    ops = ingest.add_subparsers(dest="ingest_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=default_url, help="ingest's base URL")
        p.set_defaults(token=None, token_factory=token)

    replay = ops.add_parser(
        "replay", help="re-normalize archived deliveries (after a mapping fix); no duplicates"
    )
    replay.add_argument("--since", required=True, type=_since, help="RFC 3339 time")
    replay.add_argument("--until", type=_since, help="RFC 3339 time (default: now)")
    replay.add_argument("--source", choices=("api", "csv", "hubspot", "salesforce", "pipedrive"))
    replay.set_defaults(func=_with_token(cmd_replay))
    common(replay)
    sync = ops.add_parser("sync", help="pull what changed from each configured CRM API now")
    sync.add_argument(
        "--source", dest="sources", action="append", choices=("hubspot", "salesforce", "pipedrive")
    )
    sync.set_defaults(func=_with_token(cmd_sync))
    common(sync)
    dead = ops.add_parser("dead-letters", help="list open dead letters, or --retry them all")
    dead.add_argument("--retry", action="store_true")
    dead.set_defaults(func=_with_token(cmd_dead_letters))
    common(dead)


def _with_token(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        if args.token is None:
            args.token = args.token_factory()
        code: int = command(args)
        return code

    return run
