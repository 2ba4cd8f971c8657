"""One routing decision: the lead's account owner first, then the territory rules, then
the territory's strategy among its available members, up the hierarchy, else the queue.

The decision reads state through :class:`RoutingState`, so the live path (locked rows in
PostgreSQL), ``simulate`` (the same rows, nothing kept) and ``replay`` (an in-memory
rotation over a past window) make their choices with exactly the same code.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from salesops_routing.domain.accounts import AccountMatch
from salesops_routing.domain.assignment import ACCOUNT_OWNER, FALLBACK_QUEUE, Decision
from salesops_routing.domain.ruleset import DEFAULT_TERRITORY, Territory
from salesops_routing.domain.selection import MemberState, RepState, select_rep, unavailable_because
from salesops_routing.domain.territories import LeadAttributes, TerritoryMatch
from salesops_routing.service_layer.rulesets import Model

LEAD_ATTRIBUTES = (
    "email",
    "company",
    "domain",
    "country",
    "region",
    "postal_code",
    "industry",
    "employees",
    "annual_revenue",
    "lead_source",
    "account_id",
    "created_at",
)


@dataclass(frozen=True)
class LeadInput:
    """What routing decides on: the lead's attributes as ingest published them."""

    attributes: Mapping[str, Any]

    @property
    def account_id(self) -> UUID | None:
        value = self.attributes.get("account_id")
        return UUID(str(value)) if value else None

    @property
    def domain(self) -> str | None:
        value = self.attributes.get("domain")
        return str(value) if value else None

    @property
    def company(self) -> str | None:
        value = self.attributes.get("company")
        return str(value) if value else None


@dataclass(frozen=True)
class MatchedAccount:
    match: AccountMatch
    attributes: Mapping[str, Any]  # the account's, to fill what the lead leaves out
    territory_id: str | None


class RoutingState(Protocol):
    async def matched_account(self, lead: LeadInput, *, threshold: float) -> MatchedAccount | None:
        """The account the lead belongs to, if any."""

    async def rep(self, rep_id: UUID, *, now: datetime) -> RepState | None:
        """A rep as a decision at ``now`` sees them (counts in their local day and week)."""

    async def members(
        self, model: Model, territory: Territory, *, now: datetime
    ) -> tuple[list[MemberState], float]:
        """The territory's members with their rotation positions, and its rotation clock."""


async def decide(
    state: RoutingState,
    model: Model,
    lead: LeadInput,
    *,
    now: datetime,
    exclude: Collection[UUID] = (),
) -> Decision:
    explanation: dict[str, Any] = {"ruleset_version": model.version}
    attributes = dict(lead.attributes)
    account = None
    if model.ruleset.account_matching.enabled:
        account = await state.matched_account(
            lead, threshold=model.ruleset.account_matching.fuzzy_name_threshold
        )
    if account is not None:
        owner_decision = await _to_account_owner(state, model, account, now, exclude, explanation)
        if owner_decision is not None:
            return owner_decision
        attributes = _filled(attributes, account.attributes)
    match = model.index.match(LeadAttributes.from_mapping(attributes))
    explanation["territory"] = match.explanation() if match else None
    chain = _chain(model, match)
    return await _in_territories(state, model, chain, now, exclude, explanation)


def reach(model: Model, lead: LeadInput, account: MatchedAccount | None) -> list[Territory]:
    """Every territory whose members a decision about ``lead`` may look at: the chain its
    own attributes match, and the one they match once its account's fill the gaps."""
    match = model.index.match(LeadAttributes.from_mapping(lead.attributes))
    found = _chain(model, match)
    if account is not None:
        filled = _filled(lead.attributes, account.attributes)
        found += _chain(model, model.index.match(LeadAttributes.from_mapping(filled)))
    return found


def _filled(attributes: Mapping[str, Any], account: Mapping[str, Any]) -> dict[str, Any]:
    """The lead's attributes, with the account's where the lead has none."""
    out = dict(attributes)
    for key, value in account.items():
        if out.get(key) in (None, ""):
            out[key] = value
    return out


async def _to_account_owner(
    state: RoutingState,
    model: Model,
    account: MatchedAccount,
    now: datetime,
    exclude: Collection[UUID],
    explanation: dict[str, Any],
) -> Decision | None:
    seen: dict[str, Any] = {**account.match.explanation()}
    explanation["account"] = seen
    owner_id = account.match.account.owner_id
    owner = await state.rep(owner_id, now=now) if owner_id else None
    if owner is None:
        seen["owner"] = None
        seen["skipped"] = "the account has no owner known to routing"
        return None
    seen["owner"] = {"rep_id": str(owner.id), "name": owner.name}
    why = _owner_unavailable(owner, model, now, exclude)
    if why is not None:
        seen["skipped"] = why
        return None
    territory = model.index.territory(account.territory_id) if account.territory_id else None
    name = account.match.account.name or "the account"
    return Decision(
        rep_id=owner.id,
        rep_name=owner.name,
        territory_id=account.territory_id,
        team=territory.team if territory else None,
        strategy=ACCOUNT_OWNER,
        reason=f"{name} ({account.match.method}) is owned by {owner.name or owner.id}",
        sla=territory.sla if territory else None,
        explanation={**explanation, "strategy": ACCOUNT_OWNER, "chosen": seen["owner"]},
    )


def _owner_unavailable(
    owner: RepState, model: Model, now: datetime, exclude: Collection[UUID]
) -> str | None:
    if owner.id in exclude:
        return "previous_owner: the lead is moving on from them"
    unavailable = unavailable_because(
        owner,
        now,
        check_hours=model.ruleset.account_matching.require_working_hours,
        check_capacity=False,
    )
    return f"{unavailable[0]}: {unavailable[1]}" if unavailable else None


def _chain(model: Model, match: TerritoryMatch | None) -> list[Territory]:
    if match is not None:
        ids: tuple[str, ...] = match.chain
    elif model.ruleset.fallback_territory:
        fallback = model.ruleset.fallback_territory
        ids = (fallback, *model.index.ancestors(fallback))
    elif model.version == 0:
        ids = (DEFAULT_TERRITORY,)  # no model yet: every rep, round robin
    else:
        ids = ()
    found = (model.index.territory(t) for t in ids)
    return [t for t in found if t is not None]


async def _in_territories(
    state: RoutingState,
    model: Model,
    chain: list[Territory],
    now: datetime,
    exclude: Collection[UUID],
    explanation: dict[str, Any],
) -> Decision:
    tried: list[dict[str, Any]] = []
    reasons: list[str] = []
    explanation["territories_tried"] = tried
    for territory in chain:
        members, clock = await state.members(model, territory, now=now)
        selection = select_rep(
            members,
            strategy=territory.strategy,
            now=now,
            virtual_time=clock,
            catch_up=territory.catch_up,
            exclude=exclude,
        )
        tried.append({"territory": territory.id, **selection.explanation()})
        reasons.append(selection.reason(territory.id))
        if selection.rep is not None and selection.new_position is not None:
            rep = selection.rep
            return Decision(
                rep_id=rep.id,
                rep_name=rep.name,
                territory_id=territory.id,
                team=territory.team,
                strategy=selection.strategy,
                reason=_escalated(selection.reason(territory.id), chain[0], territory),
                sla=territory.sla,
                explanation={**explanation, "strategy": selection.strategy, "chosen": _rep(rep)},
                rotation=(territory.id, rep.id, selection.new_position, selection.virtual_time),
            )
    return _queued(chain, reasons, explanation)


def _escalated(reason: str, first: Territory, served: Territory) -> str:
    if first.id == served.id:
        return reason
    return f"{reason} (nobody available in {first.id})"


def _queued(chain: list[Territory], reasons: list[str], explanation: dict[str, Any]) -> Decision:
    first = chain[0] if chain else None
    if first is None:
        reason = "no territory rule covers the lead: fallback queue"
    else:
        # Each territory's own sentence says who was skipped and why.
        reason = "; ".join(r.removesuffix(": fallback queue") for r in reasons)
        reason += ": fallback queue"
    return Decision(
        rep_id=None,
        rep_name=None,
        territory_id=first.id if first else None,
        team=first.team if first else None,
        strategy=FALLBACK_QUEUE,
        reason=reason,
        sla=None,
        explanation={**explanation, "strategy": FALLBACK_QUEUE, "chosen": None},
    )


def _rep(rep: RepState) -> dict[str, Any]:
    return {"rep_id": str(rep.id), "name": rep.name}


def summary(decision: Decision) -> dict[str, Any]:
    """The explanation in brief, for ``lead.assigned``."""
    out: dict[str, Any] = {"strategy": decision.strategy}
    account = decision.explanation.get("account")
    if account:
        out["account"] = {
            k: account.get(k) for k in ("account_id", "method", "skipped") if k in account
        }
    territory = decision.explanation.get("territory")
    if territory:
        out["rule"] = territory.get("rule")
    skipped: dict[str, int] = {}
    for tried in decision.explanation.get("territories_tried", []):
        for entry in tried.get("skipped", []):
            skipped[entry["reason"]] = skipped.get(entry["reason"], 0) + 1
    if skipped:
        out["skipped"] = skipped
    return out
