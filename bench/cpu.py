"""CPU seconds used by process trees, read from /proc: where the time of a run goes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int, *, reaped_children: bool = True) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the name.
    return sum(int(x) for x in fields[11 : 15 if reaped_children else 13]) / _TICKS


def process_cpu(pid: int) -> float:
    """CPU seconds of one process alone (a PostgreSQL backend), without walking /proc."""
    return _cpu_seconds(pid, reaped_children=False)


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for child in os.listdir("/proc"):
        if child.isdigit():
            try:
                with open(f"/proc/{child}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
            except OSError:
                continue
            if ppid == pid:
                pids.extend(_tree(int(child)))
    return pids


def tree_cpu(pid: int) -> float:
    if pid == os.getpid():  # this process's children are measured on their own
        return _cpu_seconds(pid, reaped_children=False)
    return sum(_cpu_seconds(p) for p in _tree(pid))


@dataclass
class CpuShare:
    used: dict[str, float] = field(default_factory=dict)

    def line(self, wall: float) -> str:
        parts = [f"{name} {sec / wall:.0%}" for name, sec in self.used.items()]
        return "CPU (share of one core): " + ", ".join(parts)

    def per_item(self, items: int) -> dict[str, float]:
        """CPU ms each process used per item (a lead, an event) of the run."""
        return {name: sec * 1000 / max(1, items) for name, sec in self.used.items()}


@contextmanager
def cpu_of(pids: dict[str, int]) -> Iterator[CpuShare]:
    before = {name: tree_cpu(pid) for name, pid in pids.items()}
    share = CpuShare()
    yield share
    for name, pid in pids.items():
        share.used[name] = tree_cpu(pid) - before[name]
