"""Accounts as routing keeps them: what leads are matched to, placed in territories."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from salesops_common.events import Account
from salesops_common.inbox import HandlerContext
from salesops_routing.adapters import models
from salesops_routing.domain.accounts import name_key, normalize_company
from salesops_routing.service_layer.rulesets import MODELS, place_account

# What territory rules look at, kept as the account states them.
RULE_ATTRIBUTES = (
    "country",
    "region",
    "postal_code",
    "industry",
    "employees",
    "annual_revenue",
)


async def record_account(
    ctx: HandlerContext, *, account: Account, present: Collection[str]
) -> None:
    """Keep what the event states and place the account in its territory again."""
    columns: dict[str, Any] = {}
    if "name" in present:
        columns |= {
            "name": account.name,
            "name_norm": normalize_company(account.name),
            "name_key": name_key(account.name),
        }
    if "domain" in present:
        columns["domain"] = account.domain
    if "owner_id" in present:
        columns["owner_id"] = account.owner_id
    values = account.model_dump(mode="json", include=set(RULE_ATTRIBUTES))
    attributes = {k: values[k] for k in RULE_ATTRIBUTES if k in present}
    await models.save_account(ctx.session, account.id, columns=columns, attributes=attributes)
    stored = await models.find_account(ctx.session, account.id)
    if stored is not None:
        await place_account(ctx, await MODELS.current(ctx.session), stored)


async def forget_account(ctx: HandlerContext, *, account_id: UUID) -> None:
    await models.delete_account(ctx.session, account_id)
