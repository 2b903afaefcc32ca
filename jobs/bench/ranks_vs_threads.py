#!/usr/bin/env python3
"""P MPI ranks of one thread against one process of P threads: the same training, back to
back, alternated round by round, one epoch each, per-phase seconds from the metrics file.

    python3 jobs/bench/ranks_vs_threads.py --data fashion-mnist.h5 [--build build]
        [--ranks 2] [--rounds 3] [--t-learn 20] [-- more pcn_dist train options]

The default settings are the quickstart's (dims 784,256,10, relu, batch 100, T_infer 20,
T_learn 20, lr_infer 0.1, lr_learn 0.02, no train accuracy). The ranks run as
`mpirun -np P --bind-to core` with OMP_NUM_THREADS=1; the process runs alone (no mpirun)
with OMP_NUM_THREADS=P. Reported: the median over rounds of the epoch's wall seconds and
of its slowest rank's inference, learning and collective seconds, the collectives per
batch and rank 0's bytes per batch (metrics), and the ratio ranks / threads.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

QUICKSTART = ["--dims", "784,256,10", "--activation", "relu", "--epochs", "1",
              "--batch-size", "100", "--t-infer", "20", "--t-infer-test", "100",
              "--lr-infer", "0.1", "--lr-learn", "0.02", "--train-accuracy-every", "0",
              "--seed", "1", "--progress", "0"]


def run(args, ranks, extra, tmp):
    metrics = os.path.join(tmp, f"m{ranks}.jsonl")
    if os.path.exists(metrics):
        os.remove(metrics)
    cmd = [os.path.join(args.build, "pcn_dist"), "train", "--data", args.data,
           "--t-learn", str(args.t_learn), "--metrics", metrics] + QUICKSTART + extra
    env = dict(os.environ)
    if ranks > 1:
        # mpirun refuses root without --allow-run-as-root, and more ranks than cores
        # without --oversubscribe (Open MPI's "not enough slots").
        cmd = ["mpirun", "-np", str(ranks), "--bind-to", "core"] + (
            ["--allow-run-as-root"] if os.geteuid() == 0 else []) + (
            ["--oversubscribe"] if ranks > os.cpu_count() else []) + cmd
        env["OMP_NUM_THREADS"] = "1"
    else:
        env["OMP_NUM_THREADS"] = str(args.ranks)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    batches = calls = sent = 0
    epoch = None
    with open(metrics) as f:
        for line in f:
            rec = json.loads(line)
            if rec["event"] == "batch":
                batches += 1
                calls += rec.get("collectives", 0)
                sent += rec.get("bytes_sent", 0)
            elif rec["event"] == "epoch":
                epoch = rec
    return {"epoch s": epoch["seconds"],
            "inference s": epoch["seconds_max"]["inference"],
            "learning s": epoch["seconds_max"]["learning"],
            "collectives s": epoch["seconds_max"]["collectives"],
            "collectives / batch": calls / batches,
            "bytes / batch": sent / batches}


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        extra, argv = argv[argv.index("--") + 1:], argv[:argv.index("--")]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--build", default="build")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--t-learn", type=int, default=20)
    args = ap.parse_args(argv)
    res = {"threads": [], "ranks": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = [("threads", 1), ("ranks", args.ranks)]
            for tag, n in (order if r % 2 == 0 else order[::-1]):
                res[tag].append(run(args, n, extra, tmp))
    P = args.ranks
    print(f"{args.build}: quickstart settings, T_learn {args.t_learn}, one epoch, "
          f"{args.rounds} rounds, medians")
    print(f"{'':<22}{'1 process, %d thr' % P:>20}{'%d ranks, 1 thr' % P:>18}{'ratio':>12}")
    for key in res["threads"][0]:
        a = statistics.median(x[key] for x in res["threads"])
        b = statistics.median(x[key] for x in res["ranks"])
        ratio = f"{b / a:>12.3f}" if a else f"{'-':>12}"
        print(f"{key:<22}{a:>20.6g}{b:>18.6g}{ratio}")


if __name__ == "__main__":
    main()
