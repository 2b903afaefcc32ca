#!/usr/bin/env python3
"""pcn_bench of two builds side by side, in one run: the same work, alternated round by round
so that drift of the machine falls on both, medians and the ratio B / A per figure.

    python3 jobs/bench/ab_bench.py BUILD_A BUILD_B [--rounds N] [-- pcn_bench options]

Example (before/after a change, 2 threads, CIFAR config, with the learning phases):
    python3 jobs/bench/ab_bench.py /tmp/base/build build --rounds 5 -- --threads 2 --phase

Figures: seconds per step (supervised and free inference, learning, the trainer's row-path
inference phase) and, with --phase, the whole learning phase on the per-step and the
automatic path (best of its batches). A ratio above 1 means B is slower.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

STEPS = ["infer_sup", "infer_free", "learn", "infer_rows"]
PHASE = re.compile(r"^\s+(per-step|automatic) path\s+([0-9.]+) s")


def run(build, extra):
    exe = os.path.join(build, "pcn_bench")
    out = subprocess.run([exe, "--json"] + extra, check=True, capture_output=True, text=True)
    figures = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            for s in STEPS:
                figures[s] = rec[s]["seconds"]
        m = PHASE.match(line)
        if m:
            figures["phase_" + m.group(1).replace("-", "_")] = float(m.group(2))
    return figures


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_a")
    ap.add_argument("build_b")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    runs = {"A": [], "B": []}
    for r in range(args.rounds):
        order = [("A", args.build_a), ("B", args.build_b)]
        if r % 2:
            order.reverse()  # neither build always runs first
        for tag, build in order:
            runs[tag].append(run(build, extra))
    print(f"pcn_bench {' '.join(extra)}: {args.rounds} rounds, A = {args.build_a}, "
          f"B = {args.build_b}; medians over rounds (each a median of pcn_bench's repeats)")
    print(f"{'figure':<22}{'A s':>12}{'B s':>12}{'B / A':>9}{'A spread':>10}{'B spread':>10}")
    for key in runs["A"][0]:
        a = [f[key] for f in runs["A"]]
        b = [f[key] for f in runs["B"]]
        ma, mb = statistics.median(a), statistics.median(b)
        spread = lambda v, m: (max(v) - min(v)) / m if m else 0.0
        print(f"{key:<22}{ma:>12.5f}{mb:>12.5f}{mb / ma:>9.3f}{spread(a, ma):>10.2f}"
              f"{spread(b, mb):>10.2f}")


if __name__ == "__main__":
    main()
