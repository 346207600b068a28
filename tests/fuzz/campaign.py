"""``make fuzz``: thousands of damaged files of every format through the CLI, with the counts.

    python tests/fuzz/campaign.py [--cases 10000] [--jobs 2] [--seed 0] [--time-limit 20]

Cases are drawn by hypothesis (tests/fuzz/harness.py: a seed of each format, a command among `inspect --json`,
`inspect --all --stats` and `check --to ...`, one to three mutations) and run by worker processes under a 2 GB
address-space limit and a per-case time limit.  Prints the outcome counts (exit codes 0/1/2/3, tracebacks,
timeouts, memory, crashes) overall and per seed, then each violation as a JSON case that reproduces it; exits 1
when there is any.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests.fuzz.harness import MEMORY_LIMIT, SEED_TABLE, Outcome, cases, worker  # noqa: E402

KINDS = ("exit0", "exit1", "exit2", "exit3", "traceback", "timeout", "memory", "crash")


def draw(count: int, random_seed: int) -> list[dict[str, Any]]:
    drawn: list[dict[str, Any]] = []

    @seed(random_seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def collect(case: dict[str, Any]) -> None:
        drawn.append(case)

    collect()
    return drawn[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=20.0)
    args = parser.parse_args()

    started = time.monotonic()
    todo = draw(args.cases, args.seed)
    print(f"{len(todo)} cases drawn (seed {args.seed}) in {time.monotonic() - started:.0f} s", flush=True)
    results: list[tuple[dict[str, Any], Outcome] | None] = [None] * len(todo)
    lock = threading.Lock()
    position = iter(range(len(todo)))

    def run_jobs() -> None:
        with worker(args.time_limit) as w:
            while True:
                with lock:
                    i = next(position, None)
                if i is None:
                    return
                results[i] = (todo[i], w.run(todo[i]))
                if i and i % 1000 == 0:
                    print(f"  {i} cases, {time.monotonic() - started:.0f} s", flush=True)

    threads = [threading.Thread(target=run_jobs) for _ in range(max(1, args.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [r for r in results if r is not None]

    total = Counter(outcome.kind for _, outcome in done)
    print(
        f"\n{len(done)} cases in {time.monotonic() - started:.0f} s, {MEMORY_LIMIT >> 20} MiB address space and "
        f"{args.time_limit:.0f} s per case"
    )
    print("  ".join(f"{k}: {total.get(k, 0)}" for k in KINDS))
    print(f"\n{'seed':22}" + "".join(f"{k:>10}" for k in KINDS))
    for name in sorted(SEED_TABLE):
        row = Counter(o.kind for c, o in done if c["seed"] == name)
        print(f"{name:22}" + "".join(f"{row.get(k, 0):>10}" for k in KINDS))
    bad = [(c, o) for c, o in done if not o.ok]
    for case, outcome in bad[:50]:
        print(f"\n{outcome.kind}: {outcome.detail}\n  {json.dumps(case)}")
    verdict = "PASS: every case exited 0, 1 or 2" if not bad else f"FAIL: {len(bad)} cases broke the invariant"
    print(f"\n{verdict}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
