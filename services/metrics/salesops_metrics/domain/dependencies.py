"""Which families of KPIs (a KPI's ``basis``) a change of the data can change, so that a
/metrics snapshot recomputes only those and keeps the others' rows from the snapshot before.

What changed between two snapshots is read from what the consumers applied: the count of
events applied by type (``event_counts``, which every consuming transaction adds to as it
commits, so a count moves exactly when that type's projections do), the dead letters, and
the quotas and exchange rates as they are set (:class:`DataVersion`). Each event type writes
the tables :data:`WRITES` names (``domain/projection.py``'s effects, as ``adapters/
repository.py`` writes them), and each family reads the tables :data:`READS` names
(``service_layer/reports.py`` and the statements it runs). A family none of whose tables
changed would read the same rows again: its rows are the same, whichever PostgreSQL snapshot
reads them. An event type not in :data:`WRITES` (one added later) changes every family.

The tests hold both maps to the database itself: applying each type's events writes no table
its entry leaves out, and computing each family scans no table its entry leaves out
(``pg_stat_xact_user_tables``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# What every family's read loads first: reps (and their dimensions), the newest ruleset
# (territory membership, SLAs), the exchange rates (service_layer/reports.Report.context).
ROSTER = frozenset({"reps", "rulesets", "exchange_rates"})
_LEAD = frozenset({"leads", "industry_keys"})
_ACCOUNT = frozenset({"accounts", "industry_keys"})
_DEAL = frozenset({"deals", "deal_stages"})
_ASSIGNMENT = frozenset({"lead_assignments", "lead_journeys"})

WRITES: Mapping[str, frozenset[str]] = {
    "lead.created": _LEAD,
    "lead.updated": _LEAD,
    "lead.converted": _LEAD,
    "lead.disqualified": _LEAD,
    "lead.deleted": _LEAD,
    "lead.merged": frozenset({"leads", "lead_merges"}),
    "account.created": _ACCOUNT,
    "account.updated": _ACCOUNT,
    "account.deleted": _ACCOUNT,
    "account.territory_assigned": frozenset({"accounts"}),
    "deal.created": _DEAL,
    "deal.updated": _DEAL,
    "deal.stage_changed": _DEAL,
    "deal.won": _DEAL,
    "deal.lost": _DEAL,
    "deal.deleted": _DEAL,
    # an activity may be a lead's first touch: the lead's journey is worked out again
    "activity.logged": frozenset({"activities", "lead_journeys"}),
    "rep.created": frozenset({"reps"}),
    "rep.updated": frozenset({"reps"}),
    "lead.assigned": _ASSIGNMENT,
    "lead.reassigned": _ASSIGNMENT,
    "lead.sla_breached": frozenset({"sla_breaches"}),
    "ruleset.published": frozenset({"rulesets"}),
    "forecast.published": frozenset({"forecasts"}),
    # scores are not projected: they change no KPI
    "lead.scored": frozenset(),
    "deal.scored": frozenset(),
}

# The deals' dimensions: the account (territory, segment) and the lead (source).
_DEAL_DIMS = frozenset({"deals", "accounts", "leads", "industry_keys"})
_LEAD_DIMS = frozenset({"leads", "accounts", "industry_keys"})

READS: Mapping[str, frozenset[str]] = {
    "deal_closed": ROSTER | _DEAL_DIMS,
    "deal_created": ROSTER | _DEAL_DIMS,
    "deal_open": ROSTER | _DEAL_DIMS,
    "stage_entered": ROSTER | _DEAL_DIMS | {"deal_stages"},
    # converted: a deal naming the lead
    "lead_created": ROSTER | _LEAD_DIMS | {"lead_journeys", "deals"},
    "assigned": ROSTER | _LEAD_DIMS | {"lead_journeys", "lead_assignments", "sla_breaches"},
    "activity": ROSTER | {"activities"},
    "forecast": ROSTER | _DEAL_DIMS | {"forecasts"},
    "quota": ROSTER | _DEAL_DIMS | {"quotas"},
    "lead_events": ROSTER | {"leads", "lead_merges"},
    "dead_letters": ROSTER | {"dead_letters"},
}


@dataclass(frozen=True)
class DataVersion:
    """What every KPI depends on besides the clock (adapters/queries.version): equal
    versions, equal numbers."""

    events: tuple[tuple[str, int], ...]  # events applied, by type
    dead_letters: int
    quotas: str  # a digest of the quotas as set
    rates: str  # a digest of the exchange rates as set


def changed_tables(before: DataVersion, after: DataVersion) -> frozenset[str] | None:
    """The tables that may differ between the two versions; None: any (a type not known)."""
    was, now = dict(before.events), dict(after.events)
    tables: set[str] = set()
    for type_name in was.keys() | now.keys():
        if was.get(type_name, 0) != now.get(type_name, 0):
            written = WRITES.get(type_name)
            if written is None:
                return None
            tables |= written
    if before.dead_letters != after.dead_letters:
        tables.add("dead_letters")
    if before.quotas != after.quotas:
        tables.add("quotas")
    if before.rates != after.rates:
        tables.add("exchange_rates")
    return frozenset(tables)


def stale_families(before: DataVersion, after: DataVersion) -> frozenset[str]:
    """The families whose rows may differ between the two versions."""
    tables = changed_tables(before, after)
    if tables is None:
        return frozenset(READS)
    return frozenset(basis for basis, reads in READS.items() if reads & tables)
