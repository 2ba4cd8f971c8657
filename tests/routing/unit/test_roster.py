"""What a rep event tells routing's roster."""

from __future__ import annotations

import uuid

import pytest

from salesops_common.events import Rep
from salesops_routing.domain.roster import stated_attributes

pytestmark = pytest.mark.unit


def test_a_new_rep_states_their_routing_attributes() -> None:
    manager = uuid.uuid4()
    rep = Rep(
        id=uuid.uuid4(),
        source="api",
        source_id="R1",
        name="Ann",
        email="ann@x.example",
        active=True,
        role="rep",
        team="East",
        time_zone="Europe/Berlin",
        manager_id=manager,
        licensed_tools=["dialer"],
    )
    assert stated_attributes(rep, present=rep.model_fields_set) == {
        "name": "Ann",
        "email": "ann@x.example",
        "active": True,
        "role": "rep",
        "team": "East",
        "time_zone": "Europe/Berlin",
        "manager_id": manager,
    }


def test_an_update_states_only_what_changed_and_never_erases() -> None:
    rep = Rep(id=uuid.uuid4(), source="api", source_id="R1", active=False)
    assert stated_attributes(rep, present=rep.model_fields_set) == {"active": False}


def test_an_explicit_null_clears_an_attribute_but_never_the_active_flag() -> None:
    rep = Rep(id=uuid.uuid4(), source="api", source_id="R1", team=None, active=None)
    assert stated_attributes(rep, present={"team", "active"}) == {"team": None}
