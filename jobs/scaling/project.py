#!/usr/bin/env python3
"""Projected seconds per training batch at P ranks, for the learning phase split by rows
(the previous default: a collective at every learning step) and split by output units (the
current one: two gathers per phase). A model, not a measurement: see docs/SCALING.md.

    python3 jobs/scaling/project.py [--rate GFLOPS] [--bandwidth GBPS] [--latency US]
        [--dims 3072,1000,500,10] [--batch 500] [--t-infer 50] [--t-learn 500]
        [--ranks 8,64,512] [--weak]

Per batch and rank, with B_r = ceil(B / P) rows, |W| weights, R flop/s per rank, a network
of BW bytes/s per rank and a latency a per collective message round (ring and tree
algorithms: log2 P rounds):
  inference        T_infer * 4 B_r |W| / R                          (no collective)
  by rows          T_learn * (4 B_r |W| / R + allreduce(|W|))       allreduce(n) = 2 (P-1)/P 4n / BW + 2 log2(P) a
  by output units  T_learn * 4 B |W| / (P R) + gather(B (d0+...+dL+K)) + sum_l gather(|W_l|)
                                                                    gather(n) = (P-1)/P 4n / BW + log2(P) a
Both learning paths do the same flops (the per-step weight-space arithmetic; the planner's
batch-space layers are left out of both); the energies each phase reports (two scalars)
cost 2 log2(P) a on both and are counted.
"""
import argparse
import math


def model(args, P):
    dims = [int(d) for d in args.dims.split(",")]
    K = dims[-1] if args.output_dim == 0 else args.output_dim
    sizes = [dims[l] * dims[l + 1] for l in range(len(dims) - 1)] + [K * dims[-1]]
    W = sum(sizes)
    B = args.batch * P if args.weak else args.batch
    Br = math.ceil(B / P)
    R, BW, a = args.rate * 1e9, args.bandwidth * 1e9, args.latency * 1e-6
    rounds = math.log2(P) if P > 1 else 0.0
    share = (P - 1) / P

    def allreduce(n):
        return 2 * share * 4 * n / BW + 2 * rounds * a if P > 1 else 0.0

    def gather(n):
        return share * 4 * n / BW + rounds * a if P > 1 else 0.0

    infer = args.t_infer * 4 * Br * W / R
    energies = 2 * 2 * rounds * a
    flops = args.t_learn * 4 * Br * W / R
    rows_comm = args.t_learn * allreduce(W) + energies
    units_comm = gather(B * (sum(dims) + K)) + sum(gather(n) for n in sizes) + energies
    return {"B": B, "infer": infer, "learn": flops, "rows_comm": rows_comm,
            "units_comm": units_comm}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=70.0,
                    help="flop rate of one rank, GFLOP/s (default 70: one core of the "
                    "development VM, pcn_bench's learning step)")
    ap.add_argument("--bandwidth", type=float, default=12.5,
                    help="network bandwidth per rank, GB/s (default 12.5: 100 Gb/s)")
    ap.add_argument("--latency", type=float, default=5.0,
                    help="latency of one message round, microseconds (default 5)")
    ap.add_argument("--dims", default="3072,1000,500,10")
    ap.add_argument("--output-dim", type=int, default=0)
    ap.add_argument("--batch", type=int, default=500, help="global batch (per rank: --weak)")
    ap.add_argument("--t-infer", type=int, default=50)
    ap.add_argument("--t-learn", type=int, default=500)
    ap.add_argument("--ranks", default="8,64,512")
    ap.add_argument("--weak", action="store_true", help="--batch rows per rank")
    args = ap.parse_args()
    print(f"dims {args.dims}, {'per-rank' if args.weak else 'global'} batch {args.batch}, "
          f"T_infer {args.t_infer}, T_learn {args.t_learn}; {args.rate:g} GFLOP/s per rank, "
          f"{args.bandwidth:g} GB/s, {args.latency:g} us per round\n")
    print("| P | global batch | inference s | learning flops s | by rows: collectives s | "
          "by rows: s / batch | by units: collectives s | by units: s / batch | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for P in [int(p) for p in args.ranks.split(",")]:
        m = model(args, P)
        rows = m["infer"] + m["learn"] + m["rows_comm"]
        units = m["infer"] + m["learn"] + m["units_comm"]
        print(f"| {P} | {m['B']} | {m['infer']:.4g} | {m['learn']:.4g} | "
              f"{m['rows_comm']:.4g} | {rows:.4g} | {m['units_comm']:.4g} | {units:.4g} | "
              f"{rows / units:.1f}x |")


if __name__ == "__main__":
    main()
