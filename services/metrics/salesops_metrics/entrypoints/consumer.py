"""The handler registries of metrics' two consumers: ``metrics.all`` applies every event type
of the main topics; ``metrics.dead_letters`` records what lands on their ``.dlq`` topics."""

from __future__ import annotations

from salesops_common.events import EVENT_TYPES
from salesops_common.inbox import Handler
from salesops_metrics.service_layer.projections import apply_event, record_dead_letter

# The runner wraps a record it could not decode in an envelope of this type.
UNDECODABLE = "unknown"


def handlers() -> dict[str, Handler]:
    """A handler for every known type; a type not listed here would be skipped uncounted."""
    return dict.fromkeys(EVENT_TYPES, apply_event)


def dead_letter_handlers() -> dict[str, Handler]:
    return dict.fromkeys([*EVENT_TYPES, UNDECODABLE], record_dead_letter)
