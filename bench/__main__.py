"""``make bench``: run every benchmark and print Markdown for docs/benchmarks.md."""

from __future__ import annotations

import argparse
import datetime
import platform
import sys

from bench import ingest_throughput


def main() -> int:
    p = argparse.ArgumentParser(prog="bench")
    p.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    args = p.parse_args()
    print(
        f"# Benchmarks — {datetime.date.today()} on {platform.machine()}, "
        f"{platform.python_version()}\n"
    )
    print("## Ingest throughput (`POST /v1/events`)\n")
    print("Command: `make bench`\n")
    print(ingest_throughput.main(seconds=args.seconds), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
