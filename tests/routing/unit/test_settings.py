"""Routing's settings reach the parts they configure."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from salesops_routing.bootstrap import create_app
from salesops_routing.config import RoutingSettings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESOPS_API_TOKEN", "unit-test-token")


def test_the_fetch_wait_is_the_consumers_fetch_max_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RoutingSettings().fetch_wait_ms == 10
    monkeypatch.setenv("SALESOPS_ROUTING_FETCH_WAIT_MS", "7")

    app = create_app()

    assert app.state.runtime._consumer_options == {"fetch_max_wait_ms": 7}


@pytest.mark.parametrize("wait", ["0", "501", "soon"])
def test_a_fetch_wait_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch, wait: str) -> None:
    monkeypatch.setenv("SALESOPS_ROUTING_FETCH_WAIT_MS", wait)
    with pytest.raises(ValidationError, match="SALESOPS_ROUTING_FETCH_WAIT_MS"):
        RoutingSettings()
