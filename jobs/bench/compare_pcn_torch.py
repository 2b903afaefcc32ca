#!/usr/bin/env python3
"""Side by side: pcn_dist and pcn-torch 1.1.0 on identical work, in one run.

Both get the same synthetic data (float32 inputs, integer labels), the same dims, batch,
T_infer, T_learn, T_infer_test, one epoch, train accuracy on or off alike, the same thread
count (torch.set_num_threads / OMP_NUM_THREADS), the CPU. Printed: seconds per training
batch, seconds for a test pass, peak memory (max RSS of each side's own process), their
ratios, and pcn_dist's time against the floor of DESIGN.md's cost model (flops / the sgemm
rate pcn_bench measures in the same run).

--seeds N repeats the pair of runs for seeds 0..N-1 (pcn_dist --seed s; pcn-torch
torch.manual_seed(s) before it builds the model, which seeds its weights and every latent
it draws) on the same data, each seed's two runs back to back, and prints per side the mean
and sample standard deviation over the seeds, each seed's test accuracy, and whether the
difference of the mean test accuracies is within 2 standard errors (Welch:
SE = sqrt(s1^2/N + s2^2/N)). N = 1 (default) is one run of seed 0 with the plain table.

    pip install pcn-torch==1.1.0 torch h5py
    python3 jobs/bench/compare_pcn_torch.py --config fmnist --threads 2 --dataset fmnist.h5
    python3 jobs/bench/compare_pcn_torch.py --config fmnist --dataset fmnist.h5 --seeds 5
    python3 jobs/bench/compare_pcn_torch.py --config cifar --threads 2 --batches 1
    python3 jobs/bench/compare_pcn_torch.py --config cifar --device cuda --batches 4

On a GPU (--device cuda) both sides run there (pcn-torch's model moved with .to('cuda'));
--precision fp32 runs both in float32 (pcn-torch use_mixed_precision=False, TF32 off),
--precision fp16 runs pcn-torch's default autocast against pcn_dist --precision fp16. The
floor is then the cuBLAS rate that torch measures in the same run on the step's products.

Configs: cifar = pcn-torch's README CIFAR-10 config on synthetic CIFAR-shaped data (dims
[3072, 1000, 500, 10], batch 500, T_infer 50, T_learn = 500, T_infer_test 500);
fmnist = the quickstart's ([784, 256, 10], batch 100, T_infer 20, T_learn 20,
T_infer_test 100, lr_infer 0.1, lr_learn 0.02).
"""
import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CONFIGS = {
    "cifar": dict(dims=[3072, 1000, 500, 10], batch=500, t_infer=50, t_learn=500,
                  t_infer_test=500, lr_infer=0.05, lr_learn=0.005, activation="relu"),
    "fmnist": dict(dims=[784, 256, 10], batch=100, t_infer=20, t_learn=20,
                   t_infer_test=100, lr_infer=0.1, lr_learn=0.02, activation="relu"),
}


def make_data(path, cfg, batches, seed=0):
    import h5py
    import numpy as np
    rng = np.random.default_rng(seed)
    d0, k, b = cfg["dims"][0], cfg["dims"][-1], cfg["batch"]
    with h5py.File(path, "w") as f:
        f.attrs["pcn_format"] = "pcn-dataset"
        f.attrs["format_version"] = np.int32(1)
        f.attrs["task"] = "classification"
        f.attrs["num_classes"] = np.int32(k)
        for split, n in (("train", batches * b), ("test", b)):
            f[f"{split}/x"] = rng.random((n, d0), dtype=np.float32)
            f[f"{split}/y"] = rng.integers(0, k, n).astype(np.int32)


def subset(src, dst, n_train):
    """The first n_train training rows and the whole test split, as float32 inputs after the
    file's scale and normalisation, so both sides read identical numbers."""
    import h5py
    import numpy as np
    with h5py.File(src) as f, h5py.File(dst, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        mean = f["norm/mean"][:] if "norm" in f else 0.0
        std = f["norm/std"][:] if "norm" in f else 1.0
        for split, n in (("train", n_train), ("test", None)):
            x = f[f"{split}/x"]
            scale = np.float32(x.attrs.get("scale", 1.0))
            rows = x[:n] if n else x[:]
            g[f"{split}/x"] = ((rows.astype(np.float32) * scale - mean) / std).astype(np.float32)
            g[f"{split}/y"] = (f[f"{split}/y"][:n] if n else f[f"{split}/y"][:]).astype(np.int32)


# ---- one side per process, so each peak RSS is its own ------------------------------------

def run_torch(args):
    import h5py
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    import pcn_torch
    assert pcn_torch.__version__ == "1.1.0", pcn_torch.__version__
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 on both sides
    dev = torch.device(args.device)
    cfg = CONFIGS[args.config]
    with h5py.File(args.data) as f:
        xtr, ytr = torch.from_numpy(f["train/x"][:]), torch.from_numpy(f["train/y"][:]).long()
        xte, yte = torch.from_numpy(f["test/x"][:]), torch.from_numpy(f["test/y"][:]).long()
    torch.manual_seed(args.seed)  # weights, then the latents train_pcn/test_pcn draw
    model = pcn_torch.PredictiveCodingNetwork(dims=cfg["dims"], activation=cfg["activation"],
                                              output_dim=cfg["dims"][-1]).to(dev)

    class Quiet(pcn_torch.TrainCallback):
        pass

    class NoTrainAccuracy(pcn_torch.TrainConfig):
        # pcn-torch always runs train accuracy's free inference (effective_T_infer_test
        # steps per batch); with it off on the pcn_dist side, it runs 0 steps here too.
        @property
        def effective_T_infer_test(self):
            return 0

    kind = pcn_torch.TrainConfig if args.train_accuracy else NoTrainAccuracy
    settings = dict(T_infer=cfg["t_infer"], T_learn=cfg["t_learn"],
                    T_infer_test=cfg["t_infer_test"], lr_infer=cfg["lr_infer"],
                    lr_learn=cfg["lr_learn"], num_epochs=1, callback=Quiet(),
                    use_mixed_precision=args.precision == "fp16")
    conf = kind(**settings)
    train = DataLoader(TensorDataset(xtr, ytr), batch_size=cfg["batch"])
    test = DataLoader(TensorDataset(xte, yte), batch_size=cfg["batch"])
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":  # warm-up outside the clock: CUDA context, cuBLAS handles
        warm = kind(**dict(settings, T_infer=2, T_learn=2, T_infer_test=2))
        pcn_torch.train_pcn(copy.deepcopy(model), DataLoader(TensorDataset(xtr[:cfg["batch"]],
                            ytr[:cfg["batch"]]), batch_size=cfg["batch"]), warm)
    sync()
    t0 = time.perf_counter()
    pcn_torch.train_pcn(model, train, conf)
    sync()
    conf = pcn_torch.TrainConfig(**settings)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = pcn_torch.test_pcn(model, test, conf)
    sync()
    t_test = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # host memory
    print(json.dumps({"train_s": t_train, "test_s": t_test, "accuracy": res["accuracy"],
                      "peak_mib": peak}))


def run_side(args, side, extra_env=None):
    cmd = [sys.executable, __file__, "--side", side, "--data", args.data, "--config",
           args.config, "--threads", str(args.threads), "--batches", str(args.batches),
           "--build", args.build, "--device", args.device, "--precision", args.precision,
           "--seed", str(args.seed)] + (
           ["--train-accuracy"] if args.train_accuracy else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), **(extra_env or {}))
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_pcn_dist(args):
    cfg = CONFIGS[args.config]
    exe = os.path.join(args.build, "pcn_dist")
    with tempfile.TemporaryDirectory() as tmp:
        ck = os.path.join(tmp, "c.h5")
        common = ["--data", args.data, "--dims", ",".join(map(str, cfg["dims"])),
                  "--activation", cfg["activation"], "--batch-size", str(cfg["batch"]),
                  "--t-infer", str(cfg["t_infer"]), "--t-learn", str(cfg["t_learn"]),
                  "--t-infer-test", str(cfg["t_infer_test"]), "--lr-infer", str(cfg["lr_infer"]),
                  "--lr-learn", str(cfg["lr_learn"]), "--epochs", "1", "--shuffle", "0",
                  "--progress", "0", "--train-accuracy-every",
                  "1" if args.train_accuracy else "0", "--device", args.device,
                  "--precision", args.precision, "--seed", str(args.seed)]
        metrics = os.path.join(tmp, "m.jsonl")
        subprocess.run([exe, "train", *common, "--checkpoint", ck, "--metrics", metrics],
                       check=True, capture_output=True, text=True)
        with open(metrics) as f:  # the epoch's own wall time, without start-up and test
            t_train = [json.loads(l) for l in f if '"epoch"' in l][-1]["seconds"]
        out = subprocess.run([exe, "test", "--data", args.data, "--checkpoint", ck, "--json",
                              "--progress", "0", "--device", args.device, "--precision",
                              args.precision], check=True, capture_output=True, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # pcn_dist runs
    print(json.dumps({"train_s": t_train, "test_s": res["seconds"], "accuracy": res["accuracy"],
                      "peak_mib": peak}))


def cublas_rate(args):
    """GFLOP/s of one step's matrix products (A = X W^T and X += H W per layer and the
    readout, B rows) through torch's cuBLAS at --precision, median of 20 timed repeats."""
    import torch
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    cfg = CONFIGS[args.config]
    dims, B, dev = cfg["dims"], cfg["batch"], torch.device("cuda")
    shapes = list(zip(dims, dims[1:])) + [(dims[-1], dims[-1])]
    dt = torch.float16 if args.precision == "fp16" else torch.bfloat16 if args.precision == "bf16" \
        else torch.float32
    mats = [(torch.randn(B, i, device=dev, dtype=dt), torch.randn(o, i, device=dev, dtype=dt),
             torch.randn(B, o, device=dev, dtype=dt)) for o, i in shapes]
    def step():
        for x, w, h in mats:
            x @ w.t()
            h @ w
    for _ in range(5):
        step()
    times = []
    for _ in range(20):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); step(); b.record(); torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    flops = sum(4.0 * B * o * i for o, i in shapes)
    return flops / sorted(times)[len(times) // 2] / 1e9


def sgemm_rate(args):
    cfg = CONFIGS[args.config]
    exe = os.path.join(args.build, "pcn_bench")
    out = subprocess.run([exe, "--dims", ",".join(map(str, cfg["dims"])), "--batch",
                          str(cfg["batch"]), "--threads", str(args.threads), "--repeats", "5",
                          "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="fmnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, default=10, help="training batches to time")
    ap.add_argument("--train-accuracy", action="store_true",
                    help="pcn_dist measures train accuracy like pcn-torch (always on there)")
    ap.add_argument("--build", default="build", help="pcn_dist build folder")
    ap.add_argument("--dataset", help="a pcn-dataset file to train on (e.g. Fashion-MNIST from "
                    "pcn_convert) instead of synthetic data: its first BATCHES x B training rows "
                    "and its whole test split")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16", "fp16"], default="fp32",
                    help="GPU inference products on both sides (fp16: pcn-torch's autocast)")
    ap.add_argument("--seeds", type=int, default=1,
                    help="repeat for seeds 0..N-1 and report mean, sample sd and a Welch "
                    "2-standard-error check of test accuracy (default 1: one run, seed 0)")
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--side", choices=["torch", "pcn_dist"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    if args.side == "torch":
        return run_torch(args)
    if args.side == "pcn_dist":
        return run_pcn_dist(args)
    cfg = CONFIGS[args.config]
    with tempfile.TemporaryDirectory() as tmp:
        args.data = os.path.join(tmp, "data.h5")
        if args.dataset:
            subset(args.dataset, args.data, args.batches * cfg["batch"])
        else:
            make_data(args.data, cfg, args.batches)
        rate = cublas_rate(args) * 1e9 if args.device == "cuda" else \
            sgemm_rate(args)["learn"]["floor_gflops"] * 1e9
        runs = []
        for seed in range(args.seeds):  # each seed's pair back to back
            args.seed = seed
            runs.append((run_side(args, "pcn_dist"), run_side(args, "torch")))
            if args.seeds > 1:
                print(f"seed {seed}: test accuracy pcn_dist {runs[-1][0]['accuracy']:.4f}, "
                      f"pcn-torch {runs[-1][1]['accuracy']:.4f}", file=sys.stderr, flush=True)
    # Cost model: (T_infer + T_learn + T_acc) * 4 * B * P flops per batch.
    dims, B = cfg["dims"], cfg["batch"]
    P = sum(a * b for a, b in zip(dims, dims[1:])) + dims[-1] * dims[-1]
    t_acc = cfg["t_infer_test"] if args.train_accuracy else 0
    flops = (cfg["t_infer"] + cfg["t_learn"] + t_acc) * 4.0 * B * P
    floor = flops / rate
    print(f"config {args.config}: dims {dims}, batch {B}, T_infer {cfg['t_infer']}, T_learn "
          f"{cfg['t_learn']}, T_infer_test {cfg['t_infer_test']}, {args.batches} batches, "
          f"{args.threads} threads, train accuracy {'on' if args.train_accuracy else 'off'} "
          f"(pcn-torch: always on), device {args.device}, precision {args.precision}"
          + (f", seeds 0..{args.seeds - 1}" if args.seeds > 1 else ""))
    chance = "" if args.dataset else f"  (synthetic random labels: chance {1 / dims[-1]:.2f})"
    if args.seeds == 1:
        ours, theirs = runs[0]
        per_batch = [ours["train_s"] / args.batches, theirs["train_s"] / args.batches]
        print(f"{'':22}{'pcn_dist':>12}{'pcn-torch':>12}{'ratio':>9}")
        print(f"{'s / training batch':22}{per_batch[0]:12.3f}{per_batch[1]:12.3f}"
              f"{per_batch[1] / per_batch[0]:9.2f}")
        print(f"{'s / test pass':22}{ours['test_s']:12.3f}{theirs['test_s']:12.3f}"
              f"{theirs['test_s'] / ours['test_s']:9.2f}")
        pk = [ours["peak_mib"], theirs["peak_mib"]]
        print(f"{'peak memory MiB':22}{pk[0]:12.0f}{pk[1]:12.0f}{pk[1] / pk[0]:9.2f}")
        print(f"{'test accuracy':22}{ours['accuracy']:12.4f}{theirs['accuracy']:12.4f}{chance}")
    else:
        per_batch = print_seeds(args, runs, chance)
    lib = "cuBLAS" if args.device == "cuda" else "sgemm"
    print(f"pcn_dist vs floor: {per_batch[0]:.3f} s / batch against {floor:.3f} s "
          f"({flops / 1e9:.1f} GFLOP at the {lib} rate {rate / 1e9:.0f} GFLOP/s measured now): "
          f"{per_batch[0] / floor:.2f}x; achieved {flops / per_batch[0] / 1e12:.2f} TFLOP/s "
          f"(cost-model flops / time; pcn-torch {flops / per_batch[1] / 1e12:.2f})"
          + (" (mean s / batch)" if args.seeds > 1 else ""))


def mean_sd(xs):
    """Mean and sample standard deviation (n - 1)."""
    m = sum(xs) / len(xs)
    return m, (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5


def print_seeds(args, runs, chance):
    """The table over seeds (mean ± sample sd, ratio of means) and the Welch check of the
    test accuracies; returns the two mean seconds per training batch."""
    n = len(runs)
    col = lambda side, key, scale=1.0: [r[side][key] * scale for r in runs]
    rows = [("s / training batch", "train_s", 1.0 / args.batches, ".4f"),
            ("s / test pass", "test_s", 1.0, ".3f"),
            ("peak memory MiB", "peak_mib", 1.0, ".0f"),
            ("test accuracy", "accuracy", 1.0, ".4f")]
    print(f"{'mean ± sd over ' + str(n) + ' seeds':24}{'pcn_dist':>20}{'pcn-torch':>20}"
          f"{'ratio':>9}")
    stats = {}
    for label, key, scale, fmt in rows:
        a, b = mean_sd(col(0, key, scale)), mean_sd(col(1, key, scale))
        stats[key] = (a, b)
        cell = lambda ms: f"{format(ms[0], fmt)} ± {format(ms[1], fmt)}"
        ratio = f"{b[0] / a[0]:9.2f}" if key != "accuracy" else chance
        print(f"{label:24}{cell(a):>20}{cell(b):>20}{ratio}")
    med = [sorted(col(side, "train_s", 1.0 / args.batches))[n // 2] if n % 2 else
           sum(sorted(col(side, "train_s", 1.0 / args.batches))[n // 2 - 1:n // 2 + 1]) / 2
           for side in (0, 1)]
    print(f"{'median s / batch':24}{med[0]:>20.4f}{med[1]:>20.4f}{med[1] / med[0]:9.2f}"
          "  (one run slowed by other load moves the mean, not the median)")
    for side, name in ((0, "pcn_dist"), (1, "pcn-torch")):
        print(f"test accuracy per seed, {name}: "
              + " ".join(f"{x:.4f}" for x in col(side, "accuracy")))
    (m1, s1), (m2, s2) = stats["accuracy"]
    v1, v2 = s1 * s1 / n, s2 * s2 / n
    se = (v1 + v2) ** 0.5
    df = (v1 + v2) ** 2 / ((v1 * v1 + v2 * v2) / (n - 1)) if se > 0 else float("inf")
    diff = m1 - m2
    within = abs(diff) <= 2 * se
    print(f"test accuracy, pcn_dist - pcn-torch: {diff:+.4f}; Welch standard error {se:.4f} "
          f"(df {df:.1f}); |difference| = {abs(diff) / se if se > 0 else float('inf'):.2f} SE: "
          f"{'within' if within else 'NOT within'} 2 standard errors")
    return [stats["train_s"][0][0], stats["train_s"][1][0]]

if __name__ == "__main__":
    main()
