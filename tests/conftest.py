"""Session-wide real servers: one PostgreSQL and one broker on free ports, in temporary
directories, so the suite runs beside a running ``salesops up`` and in parallel jobs."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from salesops_cli.infra import EmbeddedBroker, EmbeddedPostgres, free_port, remove_tree
from tests.support import Isolation


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
