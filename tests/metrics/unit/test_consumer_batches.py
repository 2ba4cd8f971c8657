"""Metrics' consumer of the main topics takes up to CONSUMER_BATCH records a transaction when
that many wait (a batch's statements are a fixed cost); its dead-letter consumer and every
other service keep the runner's default."""

from __future__ import annotations

import inspect

import pytest

from salesops_common.inbox import ConsumerRunner
from salesops_metrics.bootstrap import CONSUMER_BATCH, create_app
from salesops_metrics.config import MetricsSettings

pytestmark = pytest.mark.unit


def test_the_main_consumer_takes_larger_batches_than_the_default() -> None:
    default = inspect.signature(ConsumerRunner).parameters["max_records"].default
    assert CONSUMER_BATCH > default
    app = create_app(MetricsSettings(kafka_bootstrap="127.0.0.1:1", api_token="t" * 32))
    runners = {r.name: r for r in app.state.runtime.consumers}
    assert runners["metrics.all"]._max_records == CONSUMER_BATCH
    assert runners["metrics.dead_letters"]._max_records == default
