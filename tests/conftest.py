"""Session-wide real servers: one PostgreSQL and one broker on free ports, in temporary
directories, so the suite runs beside a running ``salesops up`` and in parallel jobs."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres, InfraError, free_port, remove_tree
from tests.support import Isolation

Server = TypeVar("Server", EmbeddedPostgres, EmbeddedBroker)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give schemathesis's tests a node id each. It names them ``test_x[GET /path]`` but, under
    pytest 9, builds every one's node id from ``test_x`` alone: pytest-xdist schedules by node
    id, and would run one operation of each fuzz test instead of all of them."""
    for item in items:
        if not isinstance(item, pytest.Function) or item.nodeid.endswith("::" + item.name):
            continue
        params = re.fullmatch(rf"{re.escape(item.originalname)}\[(.*)\]", item.name, re.DOTALL)
        assert params, item.name
        item._id = item.parent.id.child(item.originalname).with_params(params.group(1))
        assert item.nodeid.endswith("::" + item.name), (item.nodeid, item.name)


def on_a_free_port(start: Callable[[], Server], attempts: int = 3) -> Server:
    """Start a server on a port that was free a moment ago. Test processes running in
    parallel look for free ports at the same time: if another took this one first, the
    server cannot bind it, and another port is tried."""
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except InfraError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _embedded_postgres(prefix: str) -> Iterator[EmbeddedPostgres]:
    root = Path(tempfile.mkdtemp(prefix=prefix))

    def start() -> EmbeddedPostgres:
        server = EmbeddedPostgres(data_dir=root, port=free_port())
        server.start(fsync=False)
        return server

    server = on_a_free_port(start)
    yield server
    server.stop()
    remove_tree(root)


def _embedded_broker(prefix: str) -> Iterator[EmbeddedBroker]:
    root = Path(tempfile.mkdtemp(prefix=prefix))

    def start() -> EmbeddedBroker:
        server = EmbeddedBroker(port=free_port(), log_path=root / "tansu.log")
        server.start()
        return server

    server = on_a_free_port(start)
    yield server
    server.stop(timeout=1.0)  # in memory, nothing to keep: no need to wait for a clean stop
    remove_tree(root)


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    yield from _embedded_postgres("salesops-test-pg-")


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    yield from _embedded_broker("salesops-test-broker-")


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker of one test's own, for tests that restart it (the shared one would lose the
    other tests' topics)."""
    yield from _embedded_broker("salesops-test-own-broker-")


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of one test's own, for tests that restart it."""
    yield from _embedded_postgres("salesops-test-own-pg-")


@pytest.fixture
def iso(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> Isolation:
    return Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
