"""Where a deal sits in routing's territory model (from ``ruleset.published`` and
``account.territory_assigned``): its account's territory, or, with no account territory,
its owner's primary territory — the first territory, in the ruleset's order, that lists the
owner as a member (by rep id or by e-mail). The ruleset is routing's document, read
tolerantly: a shape forecast does not expect places nobody, it never fails a run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID


def _members(ruleset: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    territories = ruleset.get("territories")
    out = []
    for territory in territories if isinstance(territories, list) else []:
        if not isinstance(territory, dict) or not isinstance(territory.get("id"), str):
            continue
        members = territory.get("members")
        for member in members if isinstance(members, list) else []:
            if isinstance(member, dict):
                out.append((territory["id"], member))
    return out


def primary_territories(
    ruleset: Mapping[str, Any], rep_emails: Mapping[UUID, str | None]
) -> dict[UUID, str]:
    """Each known rep's primary territory."""
    by_key: dict[str, str] = {}
    for territory_id, member in _members(ruleset):
        for key in ("rep_id", "email"):
            if isinstance(value := member.get(key), str):
                by_key.setdefault(value.strip().lower(), territory_id)
    primary = {}
    for rep_id, email in rep_emails.items():
        found = by_key.get(str(rep_id)) or (by_key.get(email) if email else None)
        if found is not None:
            primary[rep_id] = found
    return primary


def deal_territory(
    account_territory: str | None, owner_id: UUID | None, primary: Mapping[UUID, str]
) -> str | None:
    if account_territory is not None:
        return account_territory
    return primary.get(owner_id) if owner_id is not None else None
