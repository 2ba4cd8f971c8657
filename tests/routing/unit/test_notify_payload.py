"""What a team's channel reads: Slack incoming-webhook messages for assignments, the
fallback queue and missed SLAs, and the retry schedule of their delivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from salesops_routing.domain.assignment import Assignment
from salesops_routing.domain.notifications import (
    MAX_BACKOFF_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    assignment_message,
    breach_message,
    redact_url,
    retry_after_seconds,
    retry_delay,
)
from salesops_routing.domain.ruleset import Sla

pytestmark = pytest.mark.unit

LEAD = uuid.UUID("0b7c6b1e-2f4e-4a8e-9d61-3c1f0a6a9e01")
REP = uuid.UUID("5f0e9f43-8a0e-4d0a-bb52-0e0c2f1c7d02")
PREVIOUS = uuid.UUID("9a1d2c3b-4e5f-4a6b-8c7d-0e1f2a3b4c03")
AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def an_assignment(**changes: Any) -> Assignment:
    fields: dict[str, Any] = {
        "lead_id": LEAD,
        "kind": "assigned",
        "rep_id": REP,
        "rep_name": "Ada Lovelace",
        "territory_id": "emea",
        "team": "emea-sales",
        "strategy": "round_robin",
        "reason": "next in rotation in emea",
        "ruleset_version": 3,
        "previous_rep_id": None,
        "assigned_at": AT,
        "sla": Sla(first_touch_minutes=30, max_reassignments=1),
        # What the decision saw of the lead: none of it belongs in a channel.
        "explanation": {"lead": {"email": "jane@prospect.example", "phone": "+49 30 1234567"}},
        "event_id": uuid.uuid4(),
    }
    fields.update(changes)
    return Assignment(**fields)


def section_text(payload: dict[str, Any]) -> str:
    section = payload["blocks"][0]
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    text: str = section["text"]["text"]
    return text


def test_a_new_lead_names_the_rep_the_territory_and_why() -> None:
    payload = assignment_message(an_assignment())

    assert payload["text"] == (
        f"Lead `{LEAD}` assigned to *Ada Lovelace* in territory *emea*: next in rotation in emea"
    )
    assert section_text(payload) == payload["text"]
    context = payload["blocks"][1]
    assert context["type"] == "context"
    assert "strategy `round_robin`" in context["elements"][0]["text"]
    assert "ruleset v3" in context["elements"][0]["text"]


def test_a_message_carries_no_contact_details_of_the_lead() -> None:
    wire = orjson.dumps(assignment_message(an_assignment())).decode()

    assert "jane@prospect.example" not in wire
    assert "1234567" not in wire


def test_a_lead_nobody_can_take_is_announced_as_waiting_in_the_fallback_queue() -> None:
    queued = an_assignment(
        rep_id=None, rep_name=None, strategy="fallback_queue", reason="no eligible rep"
    )

    text = assignment_message(queued)["text"]

    assert (
        text
        == f"Lead `{LEAD}` is waiting in the fallback queue in territory *emea*: no eligible rep"
    )


def test_a_reassignment_says_so_and_who_had_the_lead() -> None:
    moved = an_assignment(
        kind="reassigned", previous_rep_id=PREVIOUS, reason="sla_breached: next in rotation"
    )

    payload = assignment_message(moved)

    assert payload["text"].startswith(f"Lead `{LEAD}` reassigned to *Ada Lovelace*")
    assert f"previously rep `{PREVIOUS}`" in payload["blocks"][1]["elements"][0]["text"]


def test_a_rep_without_a_name_is_named_by_id() -> None:
    text = assignment_message(an_assignment(rep_name=None))["text"]

    assert f"assigned to rep `{REP}`" in text


def test_names_cannot_inject_slack_markup() -> None:
    text = assignment_message(an_assignment(rep_name="<!channel> & co"))["text"]

    assert "*&lt;!channel&gt; &amp; co*" in text
    assert "<!channel>" not in text


def test_a_missed_sla_names_who_missed_it_and_the_due_time() -> None:
    due = datetime(2026, 11, 2, 10, 0, 5, tzinfo=UTC)

    payload = breach_message(
        lead_id=LEAD,
        rep_id=REP,
        rep_name="Ada Lovelace",
        territory_id="emea",
        due_at=due,
        breached_at=due + timedelta(seconds=1),
    )

    assert payload["text"] == (
        f"First-touch SLA missed on lead `{LEAD}` (territory *emea*): *Ada Lovelace* made no "
        "outbound touch by 2026-11-02 10:00:05 UTC"
    )
    assert section_text(payload) == payload["text"]
    details = payload["blocks"][1]["elements"][0]["text"]
    assert "breached 2026-11-02 10:00:06 UTC" in details
    assert f"rep `{REP}`" in details


def test_a_due_time_is_shown_in_utc_whatever_its_zone() -> None:
    berlin = datetime(2026, 11, 2, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))

    text = breach_message(
        lead_id=LEAD,
        rep_id=REP,
        rep_name=None,
        territory_id=None,
        due_at=berlin,
        breached_at=berlin,
    )["text"]

    assert text == (
        f"First-touch SLA missed on lead `{LEAD}`: rep `{REP}` made no outbound touch by "
        "2026-11-02 11:00:00 UTC"
    )


def test_retries_back_off_exponentially_with_jitter_up_to_a_cap() -> None:
    lowest = [retry_delay(n, 5.0, rand=lambda: 0.0) for n in range(1, 5)]
    highest = [retry_delay(n, 5.0, rand=lambda: 1.0) for n in range(1, 5)]

    assert highest == [5.0, 10.0, 20.0, 40.0]
    assert lowest == [2.5, 5.0, 10.0, 20.0]  # half fixed: never an immediate retry
    assert retry_delay(30, 5.0, rand=lambda: 1.0) == MAX_BACKOFF_SECONDS


def test_retry_after_is_read_as_seconds_or_as_a_date_and_bounded() -> None:
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    assert retry_after_seconds("12", now=now) == 12.0
    assert retry_after_seconds("Mon, 02 Nov 2026 09:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Mon, 02 Nov 2026 08:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("999999", now=now) == MAX_RETRY_AFTER_SECONDS
    assert retry_after_seconds("soon", now=now) is None
    assert retry_after_seconds(None, now=now) is None


def test_a_webhook_url_is_shown_without_its_secret_part() -> None:
    url = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"

    assert redact_url(url) == "https://hooks.slack.com/…"
    assert redact_url("http://127.0.0.1:8123/hook?token=s3cret") == "http://127.0.0.1:8123/…"
