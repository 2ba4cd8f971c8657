"""The rep roster as routing keeps it: only the attributes routing decides on."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from salesops_common.events import Rep

ROUTING_ATTRIBUTES = ("name", "email", "active", "role", "team", "time_zone", "manager_id")


# Always known for a rep: a null here is a producer's slip, not a clear.
_NEVER_CLEARED = frozenset({"active"})


def stated_attributes(rep: Rep, *, present: Collection[str]) -> dict[str, Any]:
    """The routing attributes a rep event states: the ones it carries (``present``, the keys
    of its data). An update carries only what changed; a null clears an attribute, so a
    CRM that empties a rep's team is followed, and absent attributes stay as they are."""
    return {
        name: getattr(rep, name)
        for name in ROUTING_ATTRIBUTES
        if name in present and not (name in _NEVER_CLEARED and getattr(rep, name) is None)
    }
