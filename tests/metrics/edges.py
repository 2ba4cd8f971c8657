"""A history made of the cases where computing a KPI in SQL could part from computing it in
Python: employee counts on every band's edge, industries that differ only in case, whitespace
or non-ASCII letters, currencies in lower case or without a rate, amounts missing, a rep who
left, deleted accounts, reps only a ruleset knows, a territory whose id is empty with an SLA
of its own, empty lead sources, ties in time, touches by reps never assigned, leads never
touched.

Everything happens between May and July 2026 (the scenario's explicit window), on top of the
scenario's history and with its ruleset's territories kept (``ruleset_after``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from salesops_common.envelope import Envelope
from salesops_common.events import RulesetPublished
from salesops_metrics.testing import (
    account,
    activity,
    assigned,
    breached,
    deal,
    hours,
    lead,
    rep,
    ruleset,
    territory_of,
)

T0 = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)
EMPLOYEES: tuple[int | None, ...] = (0, 1, 49, 50, 249, 250, 999, 1000, 4999, 5000, None, -3)
INDUSTRIES: tuple[str | None, ...] = (
    "  Software ",
    "SOFTWARE",
    "software",
    "Ärzte",
    "ärzte",
    "\tRetail\n",
    "",
    None,
    "İnşaat",
)


def edge_events(scenario_events: list[Envelope]) -> list[Envelope]:
    """The edge history; its ruleset (version 2) keeps the scenario's territories."""
    events: list[Envelope] = []
    known, gone, ghost = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events += [
        rep(
            T0 - timedelta(days=30),
            rep_id=known,
            team="Édition",
            email="Known@Org.Example",
            time_zone="Asia/Kolkata",
            working_hours=hours("22:00", "06:00", (1, 2, 3, 4, 5, 7)),
            active=True,
            licensed_tools=[" CRM ", "Dialer"],
        ),  # fmt: skip
        rep(
            T0 - timedelta(days=30), rep_id=gone, team="Gone", active=True, licensed_tools=["crm"]
        ),  # fmt: skip
        rep(T0 - timedelta(days=2), rep_id=gone, verb="updated", active=False, team=None),
        ruleset_after(scenario_events, known, ghost, at=T0 - timedelta(days=20)),
    ]
    accounts = []
    for i, employees in enumerate(EMPLOYEES):
        account_id = uuid.uuid4()
        accounts.append(account_id)
        fields: dict[str, Any] = {"industry": INDUSTRIES[i % len(INDUSTRIES)]}
        if employees is not None:
            fields["employees"] = employees
        events.append(account(T0 - timedelta(days=10), account_id=account_id, **fields))
        territory = ("", f"edge-{i % 3}", None)[i % 3]
        events.append(
            territory_of(T0 - timedelta(days=9), account_id=account_id, territory=territory)
        )
    events.append(account(T0 - timedelta(days=1), account_id=accounts[3], verb="deleted"))
    owners = (known, gone, ghost, None)
    currencies = ("eur", "GBP", None, "USD", "Eur")
    leads = [uuid.uuid4() for _ in range(14)]
    for i, lead_id in enumerate(leads):
        created = T0 + timedelta(hours=5 * i, minutes=(7 * i) % 60)
        events.append(
            lead(
                created,
                lead_id=lead_id,
                created_at=created if i % 4 else None,
                lead_source=("", "Web", None, "web")[i % 4],
                account_id=accounts[i % len(accounts)] if i % 3 else None,
                industry=INDUSTRIES[(i + 2) % len(INDUSTRIES)],
                employees=EMPLOYEES[(i + 5) % len(EMPLOYEES)],
                owner_id=owners[i % 4],
            )  # fmt: skip
        )
        if i % 5 == 4:
            continue  # never assigned: infinite speed and response
        to = (known, gone, ghost)[i % 3]
        territory = ("", "edge-1", None)[i % 3]
        events.append(assigned(created + timedelta(seconds=i), lead_id=lead_id, rep_id=to,
                               territory=territory))  # fmt: skip
        if i % 4 == 1:
            events.append(breached(created + timedelta(hours=1), lead_id=lead_id, rep_id=to,
                                   territory=territory))  # fmt: skip
        if i % 2 == 0:
            # the same instant twice: the tie breaks on the rep's id
            touch = created + timedelta(minutes=90 + i)
            events.append(activity(touch, rep_id=to, lead_id=lead_id, tool=" crm"))
            events.append(activity(touch, rep_id=known, lead_id=lead_id, tool="Dialer"))
        elif i % 3 == 0:
            events.append(activity(created + timedelta(days=3), rep_id=uuid.uuid4(),
                                   lead_id=lead_id))  # fmt: skip  # never assigned to it
    for i in range(20):
        deal_id = uuid.uuid4()
        created = T0 + timedelta(days=i, seconds=i)
        fields = {
            "owner_id": owners[i % 4],
            "amount": None if i % 7 == 3 else 1000 + 333.33 * i,
            "currency": currencies[i % len(currencies)],
            "created_at": created if i % 6 else None,
            "stage": ("Prospecting", None, "Proposal")[i % 3],
            "lead_id": leads[i % len(leads)] if i % 2 else None,
            "account_id": accounts[i % len(accounts)] if i % 5 else None,
            "expected_close_date": (created + timedelta(days=30)).date() if i % 2 else None,
        }
        events.append(deal(created, deal_id=deal_id, **fields))
        closed = created + timedelta(days=3 + i % 4, hours=i)
        if i % 4 == 0:
            events.append(deal(created, deal_id=deal_id, verb="stage_changed", stage="Proposal"))
        if i % 3 != 2:
            verb = ("won", "lost")[i % 2]
            events.append(deal(closed, deal_id=deal_id, verb=verb,
                               closed_at=closed if i % 5 else None))  # fmt: skip
    return events


def ruleset_after(
    scenario_events: list[Envelope], known: uuid.UUID, ghost: uuid.UUID, *, at: datetime
) -> Envelope:
    """Version 2: the scenario's territories, then territories of the edge reps: the ghost by
    an upper-case id, the known rep by an e-mail in another case, a territory with an empty id
    and an SLA of its own."""
    first = next(e for e in scenario_events if e.type == "ruleset.published")
    territories = list(RulesetPublished.model_validate(first.data).ruleset["territories"])
    territories += [
        {"id": "", "sla": {"first_touch_minutes": 45}, "members": [{"email": "known@org.example"}]},
        {
            "id": "edge-1",
            "sla": {"first_touch_minutes": 120},
            "members": [{"rep_id": str(ghost).upper()}, {"rep_id": str(known)}],
        },  # fmt: skip
        {"id": "edge-2", "members": "not a list"},
    ]
    return ruleset(at, 2, territories)
