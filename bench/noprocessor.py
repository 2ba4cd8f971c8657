"""``python -m bench.noprocessor serve ingest``: the CLI's ``serve`` with ingest's background
processor switched off, for ``python -m bench --without-processor``.

A diagnosis, not a configuration: it shows what the processor's work, done in the same
process and on the same event loop as the webhook requests, costs those requests.
Deliveries are still stored and answered as usual; they stay pending.
"""

from __future__ import annotations

import asyncio
import sys

from salesops_cli.main import main as cli_main
from salesops_ingest.service_layer.processor import Processor


async def _switched_off(self: Processor) -> None:
    await asyncio.Event().wait()


def main() -> int:
    Processor.run = _switched_off  # type: ignore[method-assign]
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
