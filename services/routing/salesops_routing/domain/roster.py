"""The rep roster as routing keeps it: only the attributes routing decides on."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from salesops_common.events import Rep

# What the CRM's rep events state.
CRM_ATTRIBUTES = (
    "name",
    "email",
    "active",
    "role",
    "team",
    "time_zone",
    "manager_id",
    "working_hours",
)
# What only routing's admins set over REST (the CRMs know nothing of them).
ADMIN_ATTRIBUTES = ("capacity_per_day", "capacity_per_week", "out_of_office")
ROUTING_ATTRIBUTES = CRM_ATTRIBUTES + ADMIN_ATTRIBUTES


# Always known for a rep: a null here is a producer's slip, not a clear.
_NEVER_CLEARED = frozenset({"active"})


def stated_attributes(rep: Rep, *, present: Collection[str]) -> dict[str, Any]:
    """The routing attributes a rep event states: the ones it carries (``present``, the keys
    of its data). An update carries only what changed; a null clears an attribute, so a
    CRM that empties a rep's team is followed, and absent attributes stay as they are."""
    stated: dict[str, Any] = {}
    for name in CRM_ATTRIBUTES:
        value = getattr(rep, name)
        if name not in present or (name in _NEVER_CLEARED and value is None):
            continue
        stated[name] = value.model_dump() if name == "working_hours" and value else value
    return stated
