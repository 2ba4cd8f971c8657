"""The rep roster as routing keeps it: only the attributes routing decides on."""

from __future__ import annotations

from typing import Any

from salesops_common.events import Rep

ROUTING_ATTRIBUTES = ("name", "email", "active", "role", "team", "time_zone", "manager_id")


def stated_attributes(rep: Rep) -> dict[str, Any]:
    """The routing attributes a rep event states.

    An update carries only the fields that changed, and typed events write the others as
    null: so null means "not stated" and never erases what the roster already knows.
    """
    values = {name: getattr(rep, name) for name in ROUTING_ATTRIBUTES}
    return {name: value for name, value in values.items() if value is not None}
