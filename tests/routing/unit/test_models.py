"""The compiled model in force is frozen out of the garbage collector's way; a new version
(every ruleset PUT, every 20 s in the soak) must not freeze garbage with it for good, nor
keep the model it replaced."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from salesops_routing.domain.ruleset import implicit_ruleset
from salesops_routing.service_layer import rulesets
from salesops_routing.service_layer.rulesets import Model, Models

pytestmark = pytest.mark.unit


class Node:
    me: Any = None


async def test_garbage_is_not_frozen_with_a_model_and_a_replaced_model_goes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored = iter([(1, "first"), (2, "second")])
    newest: list[tuple[int, str]] = []

    async def fake_newest(session: Any) -> tuple[int, str]:
        return newest[-1]

    async def fake_load(session: Any, version: int) -> Model:
        return Model.compile(version, implicit_ruleset())

    monkeypatch.setattr(rulesets.models, "newest", fake_newest)
    monkeypatch.setattr(rulesets, "load", fake_load)
    models = Models()
    gc.disable()  # the cycle below must still be there when a model is frozen
    try:
        cycle = Node()
        cycle.me = cycle
        alive = weakref.ref(cycle)
        del cycle
        newest.append(next(stored))
        assert (await models.current(None)).version == 1  # type: ignore[arg-type]
        old_model = weakref.ref(await models.current(None))  # type: ignore[arg-type]
        newest.append(next(stored))
        assert (await models.current(None)).version == 2  # type: ignore[arg-type]
        gc.collect()
        assert alive() is None
        assert old_model() is None
    finally:
        gc.unfreeze()
        gc.enable()
