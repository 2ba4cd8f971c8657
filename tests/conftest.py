"""Session-wide real servers: one PostgreSQL and one broker on free ports, in temporary
directories, so the suite runs beside a running ``salesops up`` and in parallel jobs."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres, free_port, remove_tree
from tests.support import Isolation


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    root = Path(tempfile.mkdtemp(prefix="salesops-test-pg-"))
    server = EmbeddedPostgres(data_dir=root, port=free_port())
    server.start(fsync=False)
    yield server
    server.stop()
    remove_tree(root)


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    root = Path(tempfile.mkdtemp(prefix="salesops-test-broker-"))
    server = EmbeddedBroker(port=free_port(), log_path=root / "tansu.log")
    server.start()
    yield server
    server.stop()
    remove_tree(root)


@pytest.fixture
def iso(postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> Isolation:
    return Isolation(database_url=postgres.url, bootstrap=broker.bootstrap)
