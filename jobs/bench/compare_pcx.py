#!/usr/bin/env python3
"""Side by side: pcn_dist's discriminative mode and PCX 0.6.3 on the same recipe, in one run.

Both train PCX's Fashion-MNIST recipe (jobs/configs/fmnist_discriminative.ini; PCX through
jobs/bench/pcx_reference.py, which runs PCX's own modules) on the same data (the pcn_dist
data set file; PCX reads it with h5py and normalises as PCX does, (p/255 - 0.5)/0.5), for
the same epochs and seeds, on the same cores: this process pins itself to --threads cores
before anything starts, and both sides inherit that. pcn_dist runs as one process with
--threads OpenMP threads (--ranks 1) or as --ranks MPI ranks of threads/ranks threads each
(mpirun --bind-to none inside the pinned cores). For each seed, pcn_dist then PCX.

Printed per epoch and seed: the training seconds of each side (pcn_dist: its metrics'
epoch seconds, reading batches included; PCX: its jitted train_on_batch over the epoch's
batches, data slicing included, the XLA compile done beforehand), their ratio, and the
test accuracy of each (pcn_dist scores all 10000 test images after every epoch with
--test-every 1; PCX's `acc_full` is all 10000 too). Then per side the median seconds per
epoch, the final-epoch accuracy per seed and its mean, and the ratio of the medians; with
two or more seeds, at each epoch the difference of the mean accuracies against two
standard errors (Welch: sqrt(s1^2/N + s2^2/N)), and how many epochs fall within.
And pcn_dist against its matrix-product floor: pcn_bench_disc's one-thread sgemm time of
a training batch's products (per rank: batch/ranks rows), divided by the threads per
rank, times the batches of an epoch.

Install and run (the PCX venv of pcx_reference.py; pcn_dist built in --build):

    python3 -m venv /tmp/pcxvenv
    /tmp/pcxvenv/bin/pip install pcx==0.6.3 "jax[cpu]<0.5" h5py
    build/pcn_convert idx --dir /usr/share/datasets/fashion-mnist -o fashion-mnist.h5
    /tmp/pcxvenv/bin/python jobs/bench/compare_pcx.py --dataset fashion-mnist.h5 \\
        --epochs 25 --seeds 3 --threads 2 --ranks 1 --json compare_pcx.json
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import pcx_reference  # noqa: E402  (this folder; imports jax only when asked)

CONFIG = os.path.join(ROOT, "jobs", "configs", "fmnist_discriminative.ini")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="Fashion-MNIST as a pcn_dist data set")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 on both sides")
    p.add_argument("--threads", type=int, default=2, help="cores both sides run on")
    p.add_argument("--ranks", type=int, default=1, help="pcn_dist MPI ranks (threads split)")
    p.add_argument("--build", default=os.path.join(ROOT, "build"), help="pcn_dist build folder")
    p.add_argument("--skip-pcx", action="store_true", help="pcn_dist only (no jax needed)")
    p.add_argument("--json", help="write every figure here")
    a = p.parse_args(argv)
    if a.ranks < 1 or a.threads < a.ranks or a.threads % a.ranks:
        p.error("--threads must be a multiple of --ranks")
    return a


def pcn_dist_run(args, seed, tmp):
    """Trains with the shipped config; returns per-epoch rows from the metrics file."""
    metrics = os.path.join(tmp, f"metrics_{seed}.jsonl")
    cmd = [os.path.join(args.build, "pcn_dist"), "train", "--config", CONFIG, "--data",
           args.dataset, "--epochs", str(args.epochs), "--seed", str(seed), "--test-every", "1",
           "--metrics", metrics, "--checkpoint", os.path.join(tmp, f"ckpt_{seed}.h5"),
           "--overwrite"]
    if args.ranks > 1:
        cmd = ["mpirun", "-np", str(args.ranks), "--bind-to", "none"] + (
            ["--allow-run-as-root"] if os.geteuid() == 0 else []) + cmd
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads // args.ranks))
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    epochs, tests, batches = {}, {}, 0
    with open(metrics) as f:
        for line in f:
            rec = json.loads(line)
            kind = rec.get("event")
            if kind == "epoch":
                epochs[rec["epoch"]] = rec
            elif kind == "epoch_test":
                tests[rec["epoch"]] = rec
            elif kind == "batch" and rec["epoch"] == 0:
                batches += 1
    rows = []
    for e in sorted(epochs):
        if e not in tests:
            sys.exit(f"compare_pcx: no test record for epoch {e} in {metrics}")
        rows.append(dict(epoch=e + 1, train_s=epochs[e]["seconds"], acc=tests[e]["accuracy"],
                         batches=batches))
    return rows


def floor_per_epoch(args, batches):
    """The one-thread sgemm floor of an epoch's training batches, per rank."""
    threads = args.threads // args.ranks
    out = subprocess.run([os.path.join(args.build, "pcn_bench_disc"), "--batch",
                          str(128 // args.ranks), "--threads", str(threads), "--json"],
                         check=True, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS=str(threads))).stdout
    rec = json.loads(out.strip().splitlines()[-1])
    return rec["floor_batch_seconds"] * batches, rec


def welch(a, b):
    """(difference of means, 2 standard errors) of two samples of >= 2 values each."""
    se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
    return statistics.mean(a) - statistics.mean(b), 2 * se


def report(args, pcn, pcx, floor):
    print("\nseed epoch   pcn_dist s   PCX s  PCX/pcn_dist   pcn_dist acc  PCX acc")
    for s in range(args.seeds):
        for e in range(args.epochs):
            a = pcn[s][e]
            b = pcx[s]["epochs"][e] if pcx else None
            ratio = f"{b['train_s'] / a['train_s']:12.2f}" if b else " " * 12
            pacc = f"{100 * b['acc_full']:7.2f} %" if b else ""
            pts = f"{b['train_s']:7.2f}" if b else " " * 7
            print(f"{s:4d} {e + 1:5d} {a['train_s']:10.3f} {pts} {ratio}   "
                  f"{100 * a['acc']:10.2f} %  {pacc}")
    med_pcn = statistics.median(r["train_s"] for runs in pcn for r in runs)
    fin_pcn = [runs[-1]["acc"] for runs in pcn]
    out = dict(pcn_dist=dict(median_s_per_epoch=med_pcn, final_acc=fin_pcn,
                             final_acc_mean=statistics.mean(fin_pcn)),
               floor_s_per_epoch=floor, pcn_dist_over_floor=med_pcn / floor)
    print(f"\npcn_dist: median {med_pcn:.3f} s/epoch; final-epoch test accuracy per seed "
          + ", ".join(f"{100 * v:.2f} %" for v in fin_pcn)
          + f"; mean {100 * statistics.mean(fin_pcn):.2f} %")
    print(f"pcn_dist against its matrix-product floor ({floor:.3f} s/epoch): "
          f"{med_pcn / floor:.2f}x")
    if not pcx:
        return out
    med_pcx = statistics.median(r["train_s"] for run in pcx for r in run["epochs"])
    fin_pcx = [run["epochs"][-1]["acc_full"] for run in pcx]
    out["pcx"] = dict(median_s_per_epoch=med_pcx, final_acc=fin_pcx,
                      final_acc_mean=statistics.mean(fin_pcx))
    out["pcx_over_pcn_dist"] = med_pcx / med_pcn
    print(f"PCX:      median {med_pcx:.3f} s/epoch; final-epoch test accuracy per seed "
          + ", ".join(f"{100 * v:.2f} %" for v in fin_pcx)
          + f"; mean {100 * statistics.mean(fin_pcx):.2f} %")
    print(f"pcn_dist is {med_pcx / med_pcn:.2f}x faster per epoch (median against median)")
    if args.seeds >= 2:
        within = 0
        for e in range(args.epochs):
            d, two_se = welch([pcn[s][e]["acc"] for s in range(args.seeds)],
                              [pcx[s]["epochs"][e]["acc_full"] for s in range(args.seeds)])
            within += abs(d) <= two_se
        out["epochs_within_2se"] = within
        print(f"accuracy: {within} of {args.epochs} epochs with |mean difference| <= 2 "
              f"standard errors (Welch over {args.seeds} seeds)")
    return out


def main(argv=None):
    args = parse_args(argv)
    cpus = pcx_reference.limit_threads(args.threads)  # both sides run on these cores
    print(f"cores {cpus}; pcn_dist {args.ranks} rank(s) x {args.threads // args.ranks} "
          f"thread(s); PCX {args.threads} thread(s)", flush=True)
    P = data = None
    if not args.skip_pcx:
        data = pcx_reference.load_data(argparse.Namespace(dataset=args.dataset))
        P = pcx_reference.build_pcx()
    pcn, pcx = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(args.seeds):
            pcn.append(pcn_dist_run(args, s, tmp))
            print(f"seed {s}: pcn_dist final {100 * pcn[-1][-1]['acc']:.2f} %", flush=True)
            if P:
                pcx.append(pcx_reference.run_seed(P, s, data, args.epochs, pcx_reference.HP["T"]))
    floor, bench = floor_per_epoch(args, pcn[0][0]["batches"])
    out = report(args, pcn, pcx, floor)
    if args.json:
        facts = pcx_reference.machine_facts(cpus, args.threads) if P else {}
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), machine=facts, bench=bench, summary=out,
                           pcn_dist=pcn, pcx=pcx), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
