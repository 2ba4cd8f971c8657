"""An HTTP/1.1 load generator on raw keep-alive sockets, closed loop or at a fixed rate.

Closed loop (``rate=None``): ``concurrency`` connections, each sending its next request when
the previous answer has been read, for a fixed time: the server's maximum throughput.

Fixed rate (``rate=R``): request ``i`` is due at ``start + i / R`` whatever happened to the
earlier ones (open loop); ``concurrency`` connections take the requests in order, and a
request's latency counts from the moment it was due, so a stalled server cannot hide its
stall by slowing the client down (no coordinated omission).

Raw sockets rather than an HTTP client library: on two shared cores a client library's
own overhead would cap the measurement long before the server does. Requests are built by
the caller (``make_request(n)`` returns the whole request for the n-th request), so bodies,
signatures and headers can be prepared before the clock starts.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

RequestMaker = Callable[[int], bytes]
# Called with (request number, status, response body, perf_counter when the answer was read).
AnswerHook = Callable[[int, int, bytes, float], None]


class Post:
    """Builds ``POST`` requests to one URL with fixed headers (plus per-request ones)."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(url)
        self.url = url
        self._head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        ).encode()

    def __call__(self, body: bytes, extra: Mapping[str, str] | None = None) -> bytes:
        more = "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items())
        return self._head + f"{more}Content-Length: {len(body)}\r\n\r\n".encode() + body

    def of(self, make_body: Callable[[int], bytes]) -> RequestMaker:
        return lambda n: self(make_body(n))


@dataclass
class Progress:
    """Answers read so far, for whoever watches a long run."""

    answered: int = 0


@dataclass(frozen=True)
class LoadResult:
    requests: int  # answered with an expected status
    events: int
    seconds: float
    latencies: list[float]  # seconds, every answered request
    errors: int  # answered with another status
    statuses: Counter[int] = field(default_factory=Counter)
    rate: float | None = None  # the fixed rate asked for; None for a closed loop
    max_lag: float = 0.0  # fixed rate: the longest a request waited for a free connection
    scheduled: int = 0  # fixed rate: requests due within the run

    @property
    def kept_up(self) -> bool:
        """Fixed rate: every request due was answered as expected."""
        return self.rate is not None and self.errors == 0 and self.requests == self.scheduled

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

    @property
    def p99(self) -> float:
        return self.pct(0.99)

    def unexpected(self) -> str:
        """The statuses other than the expected ones, for a report's footnote."""
        return ", ".join(f"{n}× {s}" for s, n in sorted(self.statuses.items()))


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    status = int((await reader.readline()).split(b" ", 2)[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def run_load(
    url: str,
    make_request: RequestMaker,
    *,
    events_per_request: int,
    concurrency: int,
    seconds: float,
    expect: int | tuple[int, ...] = 202,
    rate: float | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
    on_answer: AnswerHook | None = None,
) -> LoadResult:
    """Send requests to ``url``'s host for ``seconds`` (and at most ``limit`` requests);
    see the module docstring. ``on_answer`` sees every answer as it is read."""
    parts = urlsplit(url)
    expected = (expect,) if isinstance(expect, int) else expect
    counter = iter(range(limit if limit is not None else 10**12))
    watch = progress or Progress()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    max_lag = 0.0
    started = time.perf_counter()
    stop_at = started + seconds

    async def worker() -> None:
        nonlocal max_lag
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for n in counter:
                if rate is None:
                    if time.perf_counter() >= stop_at:
                        return
                    request = make_request(n)
                    due = time.perf_counter()
                else:
                    due = started + n / rate
                    if due >= stop_at:
                        return
                    request = make_request(n)
                    wait = due - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    else:
                        max_lag = max(max_lag, -wait)
                status, body = await _exchange(reader, writer, request)
                answered = time.perf_counter()
                latencies.append(answered - due)
                if on_answer is not None:
                    on_answer(n, status, body, answered)
                statuses[status] += 1
                watch.answered += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    # A fixed-rate run's throughput is over the window its requests were due in; the
    # answers still outstanding at its end are waited for (their latency is counted).
    elapsed = seconds if rate is not None else time.perf_counter() - started
    scheduled = min(limit or 10**12, math.ceil(seconds * rate)) if rate is not None else 0
    ok = sum(statuses[s] for s in expected)
    for s in expected:
        statuses.pop(s, None)
    return LoadResult(
        requests=ok,
        events=ok * events_per_request,
        seconds=elapsed,
        latencies=latencies,
        errors=len(latencies) - ok,
        statuses=statuses,
        rate=rate,
        max_lag=max_lag,
        scheduled=scheduled,
    )
