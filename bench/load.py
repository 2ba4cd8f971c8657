"""A closed-loop HTTP/1.1 load generator: ``concurrency`` keep-alive connections, each
sending its next request when the previous answer has been read, for a fixed time.

Raw sockets rather than an HTTP client library: on two shared cores a client library's
own overhead would cap the measurement long before the server does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LoadResult:
    requests: int
    events: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def eps(self) -> float:
        return self.events / self.seconds

    def pct(self, q: float) -> float:
        """The q-quantile latency in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def p50(self) -> float:
        return self.pct(0.5)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    status = int((await reader.readline()).split(b" ", 2)[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def run_load(
    url: str,
    make_body: Callable[[int], bytes],
    *,
    events_per_request: int,
    concurrency: int,
    seconds: float,
    headers: dict[str, str],
    expect: int = 202,
) -> LoadResult:
    parts = urlsplit(url)
    head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    counter = iter(range(10**12))
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < stop_at:
                body = make_body(next(counter))
                request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
                started = time.perf_counter()
                status = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - started)
                errors += status != expect
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ok = len(latencies) - errors
    return LoadResult(ok, ok * events_per_request, elapsed, latencies, errors)
