"""``salesops demo``: load the Maven CRM sample into a running stack through ingest's API.

Only the public HTTP APIs are used, as any CRM connector would: the events go to ingest in
batches, then a forecast is run and the KPIs are read back. Ingest deduplicates by
``source_event_id``, so a second run changes nothing and reports duplicates.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from salesops_cli.maven import MavenSummary, load_maven_events

Event = dict[str, Any]
BAR_WIDTH = 30


class DemoError(RuntimeError):
    """Ingest refused the data, or kept failing: the demo cannot go on."""


@dataclass(frozen=True)
class Retry:
    """Bounded exponential backoff for what a retry can fix."""

    tries: int = 5
    first_delay: float = 0.5
    longest_delay: float = 30.0

    async def pause(self, attempt: int, hint: float | None = None) -> None:
        delay = hint if hint is not None else self.first_delay * 2 ** (attempt - 1)
        await asyncio.sleep(min(delay, self.longest_delay))


DEFAULT_RETRY = Retry()


@dataclass(frozen=True)
class Routed:
    """What routing did with the leads: given to reps, or waiting in its fallback queue (no
    rule covered them, or no rep could take them: away, at capacity, outside working hours)."""

    to_reps: int
    queued: int
    oldest_reason: str | None = None  # why the oldest queued lead waits

    @property
    def total(self) -> int:
        return self.to_reps + self.queued


@dataclass
class DemoReport:
    """What the demo sent and what the stack made of it."""

    events: int = 0
    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    generated_leads: int = 0
    forecasts: list[dict[str, Any]] = field(default_factory=list)
    kpis: list[dict[str, Any]] = field(default_factory=list)
    routed: Routed | None = None  # None: routing did not answer

    def __str__(self) -> str:
        return (
            f"Maven CRM demo: {self.events:,} events, {self.accepted:,} accepted, "
            f"{self.duplicates:,} duplicates"
        )


class Progress:
    """A bar redrawn in place on a terminal; a line every 10 % elsewhere (logs, CI)."""

    def __init__(self, total: int, out: TextIO, label: str = "loading Maven CRM") -> None:
        self.total, self.out, self.label = total, out, label
        self.tty = out.isatty()
        self._last_decile = -1

    def bar(self, done: int) -> str:
        filled = BAR_WIDTH * done // self.total if self.total else BAR_WIDTH
        dots = "." * (BAR_WIDTH - filled)
        return f"{self.label}  [{'#' * filled}{dots}]  {done:,}/{self.total:,} events"

    def show(self, done: int) -> None:
        if self.tty:
            end = "\n" if done >= self.total else ""
            self.out.write(f"\r{self.bar(done)}{end}")
        elif (decile := 10 * done // max(self.total, 1)) > self._last_decile:
            self._last_decile = decile
            self.out.write(f"{self.bar(done)}\n")
        self.out.flush()


# --- loading --------------------------------------------------------------------------------


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _answer(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise DemoError(f"ingest answered 202 without a JSON object: {resp.text[:500]}")
    return body


async def post_batch(
    client: httpx.AsyncClient, url: str, batch: Sequence[Event], retry: Retry = DEFAULT_RETRY
) -> dict[str, Any]:
    """Post one batch. Connection errors, 5xx and 429 are retried: a batch ingest did store
    before the failure comes back as duplicates, never twice. Other 4xx are the data's fault."""
    for attempt in range(1, retry.tries + 1):
        try:
            resp = await client.post(url, json=list(batch))
        except httpx.TransportError as exc:
            if attempt == retry.tries:
                raise DemoError(f"ingest is unreachable at {url}: {exc!r}") from exc
            await retry.pause(attempt)
            continue
        if resp.status_code == 202:
            return _answer(resp)
        if resp.status_code != 429 and resp.status_code < 500:
            raise DemoError(f"ingest refused a batch ({resp.status_code}): {resp.text}")
        if attempt == retry.tries:
            raise DemoError(f"ingest kept failing ({resp.status_code}): {resp.text}")
        await retry.pause(attempt, _retry_after(resp))
    raise DemoError("no tries configured")


async def send_events(
    client: httpx.AsyncClient,
    ingest_url: str,
    events: Sequence[Event],
    *,
    batch_size: int,
    progress: Progress,
    retry: Retry = DEFAULT_RETRY,
) -> DemoReport:
    """Post the events in order, ``batch_size`` at a time; the counts ingest reported."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = DemoReport(events=len(events))
    url = f"{ingest_url.rstrip('/')}/v1/events"
    for start in range(0, len(events), batch_size):
        answer = await post_batch(client, url, events[start : start + batch_size], retry)
        report.batches += 1
        report.accepted += int(answer.get("accepted", 0))
        report.duplicates += int(answer.get("duplicates", 0))
        progress.show(min(start + batch_size, len(events)))
    return report


# --- after loading: wait, forecast, summary -------------------------------------------------


async def _get_json(client: httpx.AsyncClient, url: str) -> Any:
    """A JSON body, or None when the service is not there or answers nonsense."""
    try:
        resp = await client.get(url)
        return resp.json() if resp.is_success else None
    except (httpx.HTTPError, ValueError):
        return None


async def read_kpis(client: httpx.AsyncClient, metrics_url: str) -> list[dict[str, Any]]:
    body = await _get_json(client, f"{metrics_url.rstrip('/')}/v1/kpis")
    kpis = body.get("kpis") if isinstance(body, dict) else None
    return [k for k in kpis if isinstance(k, dict)] if isinstance(kpis, list) else []


def _count(values: dict[str, Any], *names: str) -> int:
    return sum(v for n in names if isinstance(v := values.get(n), int))


async def wait_until_applied(
    missing: Callable[[], Awaitable[int | None]], *, within: float = 120, stall: float = 15
) -> bool:
    """Poll until nothing is missing. Consumers apply what ingest accepted within seconds,
    and a summary taken earlier would show a half-loaded pipeline; but a service that stopped
    making progress (down, or routing leads to its fallback queue) must not hang the demo."""
    loop = asyncio.get_running_loop()
    deadline, last, last_change = loop.time() + within, None, loop.time()
    while loop.time() < deadline:
        left = await missing()
        if left == 0:
            return True
        if left != last:
            last, last_change = left, loop.time()
        elif loop.time() - last_change > stall:
            return False
        await asyncio.sleep(0.5)
    return False


async def read_routed(client: httpx.AsyncClient, routing_url: str) -> Routed | None:
    """Leads routing gave to reps (``GET /v1/reps``) and leads in its fallback queue."""
    base = routing_url.rstrip("/")
    reps = await _get_json(client, f"{base}/v1/reps")
    queue = await _get_json(client, f"{base}/v1/routing/queue?limit=1")
    if not isinstance(reps, dict) or not isinstance(queue, dict):
        return None
    listed = reps.get("reps")
    rows = [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []
    to_reps = sum(_count(r, "assigned_leads") for r in rows)
    leads = queue.get("leads")
    oldest = leads[0] if isinstance(leads, list) and leads else None
    reason = oldest.get("reason") if isinstance(oldest, dict) else None
    return Routed(to_reps, _count(queue, "count"), reason if isinstance(reason, str) else None)


def _missing_in_routing(
    client: httpx.AsyncClient, routing_url: str, *, leads: int
) -> Callable[[], Awaitable[int | None]]:
    async def missing() -> int | None:
        routed = await read_routed(client, routing_url)
        return None if routed is None else max(leads - routed.total, 0)

    return missing


def _missing_in_metrics(
    client: httpx.AsyncClient, metrics_url: str, *, closed: int, assigned: int
) -> Callable[[], Awaitable[int | None]]:
    """Closed deals metrics has not counted yet, and leads routing gave to a rep that metrics
    has not seen assigned (a lead in the fallback queue is assigned to no one)."""

    async def missing() -> int | None:
        kpis = await read_kpis(client, metrics_url)
        if not kpis:
            return None
        values = {str(k.get("kpi")): k.get("value") for k in kpis}
        outcomes = _count(values, "deals_won", "deals_lost")
        return max(closed - outcomes, 0) + max(assigned - _count(values, "leads_assigned"), 0)

    return missing


def _missing_in_forecast(
    client: httpx.AsyncClient, forecast_url: str, *, closed: int
) -> Callable[[], Awaitable[int | None]]:
    async def missing() -> int | None:
        body = await _get_json(client, f"{forecast_url.rstrip('/')}/v1/pipeline")
        if not isinstance(body, dict):
            return None
        return max(closed - _count(body, "won_deals", "lost_deals"), 0)

    return missing


async def run_forecast(
    client: httpx.AsyncClient, forecast_url: str, *, tries: int = 10, pause: float = 1.0
) -> list[dict[str, Any]]:
    """Run a forecast and keep its company-wide figures. Retried on connection errors, and
    on 409, which forecast answers until the first closed deal has reached it."""
    url = f"{forecast_url.rstrip('/')}/v1/forecasts/run"
    for _ in range(tries):
        try:
            resp = await client.post(url)
            if resp.status_code == 201:
                return _company_forecasts(resp.json())
        except (httpx.TransportError, ValueError):
            pass
        else:
            if resp.status_code != 409:
                return []
        await asyncio.sleep(pause)
    return []


def _company_forecasts(body: Any) -> list[dict[str, Any]]:
    found = body.get("forecasts") if isinstance(body, dict) else None
    if not isinstance(found, list):
        return []
    return [f for f in found if isinstance(f, dict) and _is_company(f.get("scope"))]


def _is_company(scope: Any) -> bool:
    return isinstance(scope, dict) and scope.get("kind") == "company"


def _kpi_text(kpi: dict[str, Any]) -> str:
    value = kpi.get("value")
    shown = f"{value:.3f}" if isinstance(value, float) else "n/a" if value is None else value
    return f"{kpi.get('kpi', '?')}={shown}"


def _wrapped(first: str, items: Sequence[str], width: int = 100) -> list[str]:
    """Items two spaces apart, in lines of at most ``width``, continued under the first."""
    lines, line = [], first
    for item in items:
        if line != first and len(line) + 2 + len(item) > width:
            lines.append(line)
            line = " " * len(first) + item
        else:
            line += ("  " if line != first else "") + item
    return [*lines, line]


def _amount(forecast: dict[str, Any]) -> str:
    point, low, high = (forecast.get(k) for k in ("point", "lo80", "hi80"))
    band = f" (80 %: {low} to {high})" if low is not None and high is not None else ""
    return f"{point} {forecast.get('currency', '')}{band}"


def summary_lines(report: DemoReport, summary: MavenSummary, routing_url: str) -> list[str]:
    """The closing words; built only from what was there, so they cannot fail the demo."""
    lines = [
        f"{report.events:,} events posted in {report.batches} batches: "
        f"{report.accepted:,} accepted, {report.duplicates:,} duplicates"
        + (" (already loaded)" if report.duplicates else ""),
        f"  from the sample: {summary.reps} reps and managers, {summary.accounts} accounts, "
        f"{summary.deals:,} deals ({summary.won:,} won, {summary.lost:,} lost)",
        f"  GENERATED: {summary.leads} leads (the sample has none), marked generated: true",
    ]
    known = [k for k in report.kpis if k.get("value") is not None]
    if known:
        lines.extend(_wrapped("  kpis: ", [_kpi_text(k) for k in known]))
        if len(known) < len(report.kpis):
            lines.append(
                f"    ({len(report.kpis) - len(known)} more are per stage or have no value "
                "from this data: GET /v1/kpis?kpi=<name> shows one, GET /v1/kpis defines all)"
            )
    elif report.kpis:
        lines.append("  kpis: none has a value yet")
    else:
        lines.append("  kpis: metrics did not answer")
    for f in report.forecasts:
        lines.append(f"  forecast, company, {f.get('period')}: {_amount(f)}")
    if not report.forecasts:
        lines.append("  forecast: none yet (forecast did not answer, or has no closed deals)")
    base = routing_url.rstrip("/")
    routed = report.routed
    if routed is None:
        lines.append("  routing: did not answer")
    else:
        lines.append(
            f"  routing: {routed.total:,} leads routed: {routed.to_reps:,} to reps, "
            f"{routed.queued:,} waiting in the fallback queue"
        )
        lines.append(f"    GET {base}/v1/reps and GET {base}/v1/routing/queue show them")
        if routed.queued and routed.oldest_reason:
            lines.append(f"    the oldest waits because: {routed.oldest_reason}")
            when = (
                "when their working day begins"
                if "outside_hours" in routed.oldest_reason
                else "as soon as one can take them"
            )
            lines.append(f"    queued leads go to a rep {when}")
    return lines


async def run_demo(
    *,
    ingest_url: str,
    forecast_url: str,
    routing_url: str,
    metrics_url: str,
    api_token: str,
    batch_size: int = 500,
    shift_dates: bool = True,
    out: TextIO = sys.stderr,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: Retry = DEFAULT_RETRY,
    wait_within: float = 120,
) -> DemoReport:
    """Load the sample, wait for the services to apply it, run a forecast, print a summary.
    ``transport`` and ``retry`` are for tests: a fake stack, no real waiting."""
    events = load_maven_events(shift_dates=shift_dates)
    summary = MavenSummary.of(events)
    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(headers=headers, timeout=60, transport=transport) as client:
        progress = Progress(len(events), out)
        report = await send_events(
            client, ingest_url, events, batch_size=batch_size, progress=progress, retry=retry
        )
        report.generated_leads = summary.leads
        out.write("waiting for the services to apply the events...\n")
        closed = summary.won + summary.lost
        routing = _missing_in_routing(client, routing_url, leads=summary.leads)
        await wait_until_applied(routing, within=wait_within)
        report.routed = await read_routed(client, routing_url)
        assigned = report.routed.to_reps if report.routed else 0
        metrics = _missing_in_metrics(client, metrics_url, closed=closed, assigned=assigned)
        forecast = _missing_in_forecast(client, forecast_url, closed=closed)
        for missing in (metrics, forecast):
            await wait_until_applied(missing, within=wait_within)
        report.forecasts = await run_forecast(client, forecast_url, pause=2 * retry.first_delay)
        report.kpis = await read_kpis(client, metrics_url)
    out.write("\n".join(summary_lines(report, summary, routing_url)) + "\n")
    out.flush()
    return report
