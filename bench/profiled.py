"""``python -m bench.profiled serve ingest``: the CLI's ``serve``, under a CPU sampler.

py-spy is not available here, so this is its poor relative: a ``setitimer(ITIMER_PROF)``
signal every ``SALESOPS_BENCH_PROFILE_INTERVAL`` seconds of process CPU time (default 5 ms)
records the main thread's Python stack (the event loop runs there). Time in C (uvloop,
httptools, asyncpg's protocol, orjson, hashing) is charged to the Python frame that called
into it, or to the loop's frame when no Python code is running.

Each SIGUSR1 writes the stacks sampled since the previous one to
``$SALESOPS_BENCH_PROFILE/part-<n>.txt`` (collapsed stacks, one ``frame;frame;... count``
per line, as flamegraph tools read them) and starts over; stopping writes ``final.txt``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from pathlib import Path
from types import FrameType

from salesops_cli.main import main as cli_main

_INTERVAL = float(os.environ.get("SALESOPS_BENCH_PROFILE_INTERVAL", "0.005"))
_MAX_DEPTH = 60


class Sampler:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.stacks: Counter[tuple[str, ...]] = Counter()
        self.parts = 0

    def sample(self, _signum: int, frame: FrameType | None) -> None:
        names: list[str] = []
        while frame is not None and len(names) < _MAX_DEPTH:
            code = frame.f_code
            module = Path(code.co_filename).stem
            names.append(f"{module}:{code.co_name}:{frame.f_lineno}")
            frame = frame.f_back
        self.stacks[tuple(reversed(names))] += 1

    def dump(self, name: str) -> None:
        stacks, self.stacks = self.stacks, Counter()
        tmp = self.out_dir / f".{name}.tmp"
        with tmp.open("w") as f:
            for stack, count in stacks.most_common():
                f.write(";".join(stack) + f" {count}\n")
        tmp.rename(self.out_dir / name)

    def next_part(self, _signum: int, _frame: FrameType | None) -> None:
        self.parts += 1
        self.dump(f"part-{self.parts}.txt")


def summarize(path: Path, top: int = 25) -> str:
    """The functions with the most samples: on top of the stack (self) and anywhere on it
    (inclusive), as shares of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        funcs = [frame.rpartition(":")[0] for frame in stack.split(";")]
        if funcs:
            own[funcs[-1]] += n
        for func in set(funcs):
            inclusive[func] += n
    lines = [f"{path.name}: {total} samples", "", "self:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    if sys.argv[1:2] == ["--summary"]:
        for name in sys.argv[2:]:
            print(summarize(Path(name)), end="\n\n")
        return 0
    sampler = Sampler(Path(os.environ["SALESOPS_BENCH_PROFILE"]))
    signal.signal(signal.SIGPROF, sampler.sample)
    signal.signal(signal.SIGUSR1, sampler.next_part)
    signal.setitimer(signal.ITIMER_PROF, _INTERVAL, _INTERVAL)
    try:
        return cli_main(sys.argv[1:])
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        sampler.dump("final.txt")


if __name__ == "__main__":
    sys.exit(main())
