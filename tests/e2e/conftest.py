"""Whole stacks as users run them: ``salesops up`` and ``salesops serve`` subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from salesops_cli.infra import free_port, remove_tree
from tests.support import Isolation

SERVICES = ("ingest", "routing", "metrics", "forecast")


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    urls: dict[str, str]
    home: Path
    env: dict[str, str]

    def log(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def stack_env(iso: Isolation | None, home: Path) -> tuple[dict[str, str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESOPS_")}
    env.update(iso.env() if iso else {"SALESOPS_API_TOKEN": "e2e-token"})
    env["SALESOPS_HOME"] = str(home)
    urls = {}
    for name in SERVICES:
        port = free_port()
        env[f"SALESOPS_{name.upper()}_PORT"] = str(port)
        urls[name] = f"http://127.0.0.1:{port}"
    return env, urls


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def start_stack(env: dict[str, str], urls: dict[str, str], home: Path) -> RunningStack:
    out = open(home / "up.log", "wb")  # noqa: SIM115 - closed by stop_stack
    process = subprocess.Popen(
        [sys.executable, "-m", "salesops_cli.main", "up"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    stack = RunningStack(process, urls, home, env)
    deadline = time.monotonic() + 120
    while not all(ready(u) for u in urls.values()):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_stack(stack)
            logs = "\n".join(f"--- {n}\n{stack.log(n)}" for n in SERVICES)
            pytest.fail(f"stack did not come up:\n{(home / 'up.log').read_text()}\n{logs}")
        time.sleep(0.3)
    return stack


def stop_stack(stack: RunningStack) -> list[psutil.Process]:
    """SIGTERM, as a service manager would; returns any process left behind."""
    children = psutil.Process(stack.process.pid).children(recursive=True)
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGTERM)
        stack.process.wait(60)
    _, alive = psutil.wait_procs(children, timeout=10)
    return alive


@pytest.fixture
def stack(iso: Isolation) -> Iterator[RunningStack]:
    home = Path(tempfile.mkdtemp(prefix="salesops-e2e-"))
    env, urls = stack_env(iso, home)
    running = start_stack(env, urls, home)
    yield running
    stop_stack(running)
    remove_tree(home)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Where a test's service processes write their logs."""
    return tmp_path
