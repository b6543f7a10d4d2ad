"""The cost of tracing on scenario (a): 2,000 sequential steps, with and without OpenTelemetry.

    python bench/tracing.py [--rounds 7] [--steps 2000] [--durability normal]

Each round runs (a) in two fresh processes, one where ``opentelemetry`` cannot be
imported (the extra not installed) and one with the API installed and no SDK
configured (every span a no-op), in alternating order; prints the median time
per step of each and the overhead. Needs ``pip install opentelemetry-api``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = """
import asyncio, sys, tempfile, time
if sys.argv[1] == "without":
    sys.modules["opentelemetry"] = None  # as if the extra were not installed
import durable, workflows

async def main() -> float:
    with tempfile.TemporaryDirectory() as folder:
        async with durable.Runtime(f"{folder}/bench.db", durability=sys.argv[3]) as rt:
            await (await rt.start(workflows.sequential, 50)).result()  # warm up
            start = time.perf_counter()
            await (await rt.start(workflows.sequential, int(sys.argv[2]))).result()
            traced = rt.telemetry.tracing is not None
            return (time.perf_counter() - start) / int(sys.argv[2]) * 1e6, traced

print(*asyncio.run(main()))
"""


def measure(mode: str, steps: int, durability: str) -> float:
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{HERE.parent}"}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(steps), durability],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[1] == str(mode == "with"), f"the {mode} process traced: {out[1]}"
    return float(out[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--durability", default="normal", choices=["full", "normal"])
    args = parser.parse_args()
    times: dict[str, list[float]] = {"without": [], "with": []}
    for round_ in range(args.rounds):
        order = ["without", "with"] if round_ % 2 == 0 else ["with", "without"]
        for mode in order:
            times[mode].append(measure(mode, args.steps, args.durability))
    without, with_api = (statistics.median(times[mode]) for mode in ("without", "with"))
    overhead = (with_api / without - 1) * 100
    print(f"(a) {args.steps} sequential steps, durability {args.durability}, {args.rounds} rounds")
    print(f"  opentelemetry not installed:   {without:7.1f} us/step")
    print(f"  opentelemetry-api, no SDK:     {with_api:7.1f} us/step  ({overhead:+.1f}%)")
    print(json.dumps({"without_us": without, "with_api_us": with_api, "overhead_pct": overhead}))


if __name__ == "__main__":
    main()
