"""``python -m bench.consumer_options serve routing``: the CLI's ``serve`` with extra
``AIOKafkaConsumer`` options for the service's consumers, read as a JSON object from
``SALESOPS_BENCH_CONSUMER_OPTIONS`` (e.g. ``{"fetch_max_wait_ms": 10}``).

A diagnosis, not a configuration: it measures what a consumer setting would change
(``python -m bench.routing_e2e --routing-module bench.consumer_options --routing-env
SALESOPS_BENCH_CONSUMER_OPTIONS='{"fetch_max_wait_ms": 10}'``) without editing the service.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import orjson

from salesops_cli.main import main as cli_main
from salesops_common import runtime

ENV = "SALESOPS_BENCH_CONSUMER_OPTIONS"


def main() -> int:
    options: dict[str, Any] = orjson.loads(os.environ.get(ENV, "{}"))
    original = runtime.ServiceRuntime.__init__

    def with_options(self: runtime.ServiceRuntime, **kwargs: Any) -> None:
        kwargs["consumer_options"] = {**(kwargs.get("consumer_options") or {}), **options}
        original(self, **kwargs)

    runtime.ServiceRuntime.__init__ = with_options  # type: ignore[method-assign]
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
