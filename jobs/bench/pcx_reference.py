#!/usr/bin/env python3
"""PCX 0.6.3 reference run of the discriminative predictive coding recipe (issue 15).

Runs PCX itself (its modules: pcx.nn.Linear, pcx.predictive_coding.Vode, pcx.utils.Optim,
pcx.functional.vmap/value_and_grad/jit), not a re-implementation, on Fashion-MNIST:
784-128-128-128-10, GELU (jax.nn.gelu, tanh form), identity output with squared-error energy,
T = 5 inference steps with optax.sgd(0.026070879231635192, momentum=0.1) on the latents
(momentum reset every batch), energy SUMMED over the batch for the latent gradient
(jax.lax.psum, as in PCX's examples/PC_SE.py), weight gradient of the summed energy scaled
by 1/batch (Optim.step scale_by), optax.adamw(warmup_cosine_decay_schedule(...),
weight_decay=0.0018383293983087593), batch 128 with the last partial batch dropped, 25
epochs. Hyperparameters are those of PCX's
examples/discriminative_experiments/MLP/fmnist/L_PC_SE_fmnist.yaml; see docs/PCX.md.

Install (the versions the figures in docs/PCX.md were measured with):

    python3 -m venv /tmp/w/pcxvenv
    /tmp/w/pcxvenv/bin/pip install pcx==0.6.3 "jax[cpu]<0.5" h5py
    # resolved to jax 0.4.38, jaxlib 0.4.38, optax 0.2.5, equinox 0.11.12

Run:

    /tmp/w/pcxvenv/bin/python jobs/bench/pcx_reference.py --epochs 25 --seeds 3 \
        --threads 2 --json pcx_ref.json
    # or from a pcn_dist data set (inputs x*scale, then PCX's (v - 0.5) / 0.5):
    ... --dataset fashion-mnist.h5

Per epoch it prints the training seconds (the jitted train_on_batch over every batch; the
XLA compile is done beforehand on the model, whose parameters and optimiser state are then
restored, and reported once per seed as compile_s), the
test seconds, and the test accuracy two ways: acc (PCX's: 78 batches of 128, the last 16
test images dropped by drop_last=True, mean of the batch means) and acc_full (all 10000).
The JSON holds every epoch of every seed plus the machine facts: CPU model, cores, the
threads used (sched_setaffinity to that many cores and XLA_FLAGS), Python, jax, jaxlib,
optax, equinox, pcx versions, date, command line.

Shuffling: numpy.random.RandomState(seed).permutation per epoch (PCX's examples use a torch
DataLoader with shuffle=True; torch is not needed here, so the order differs from theirs).
Weights: pcx.RKG.seed(seed) before the model is built, as PCX's seed.py does.
"""
import argparse
import datetime
import gzip
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

HP = {
    "dims": [784, 128, 128, 128, 10],
    "act_fn": "gelu",
    "T": 5,
    "batch_size": 128,
    "lr_w": 0.0002972210629627541,
    "wd": 0.0018383293983087593,
    "lr_x": 0.026070879231635192,
    "momentum_x": 0.1,
    "warmup_fraction": 0.1,
    "peak_factor": 1.1,
    "end_factor": 0.1,
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--seeds", type=int, default=1, help="runs seeds 0..S-1")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dataset", default=None, help="pcn_dist HDF5 data set (optional)")
    p.add_argument("--idx-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--json", default=None, help="write all results here")
    p.add_argument("--T", type=int, default=HP["T"], help="inference steps")
    return p.parse_args(argv)


def limit_threads(threads):
    """Pin this process to `threads` cores and tell XLA's CPU backend; before importing jax."""
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cpus)
    eigen = "true" if threads > 1 else "false"
    flags = f"--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={threads}"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return cpus


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def pcx_normalise(v):
    """torchvision ToTensor (x/255) then Normalize((0.5,), (0.5,)), flattened."""
    return ((v.astype(np.float32) - np.float32(0.5)) / np.float32(0.5)).reshape(len(v), -1)


def load_data(args):
    """Returns (xtr, ytr, xte, yte): float32 [N, 784] in [-1, 1], int32 labels."""
    if args.dataset:
        import h5py
        out = []
        with h5py.File(args.dataset, "r") as f:
            for split in ("train", "test"):
                x = f[f"{split}/x"]
                scale = float(x.attrs.get("scale", 1.0))
                v = x[:].astype(np.float64) * scale
                out += [pcx_normalise(v), f[f"{split}/y"][:].astype(np.int32)]
        return tuple(out)
    d = args.idx_dir
    xtr = read_idx(f"{d}/train-images-idx3-ubyte.gz").astype(np.float32) / np.float32(255)
    xte = read_idx(f"{d}/t10k-images-idx3-ubyte.gz").astype(np.float32) / np.float32(255)
    ytr = read_idx(f"{d}/train-labels-idx1-ubyte.gz").astype(np.int32)
    yte = read_idx(f"{d}/t10k-labels-idx1-ubyte.gz").astype(np.int32)
    return pcx_normalise(xtr), ytr, pcx_normalise(xte), yte


def build_pcx():
    """Defines the model and the jitted steps; returns them in a dict (imports jax here)."""
    import jax
    import optax
    import pcx
    import pcx.predictive_coding as pxc
    import pcx.nn as pxnn
    import pcx.utils as pxu
    import pcx.functional as pxf

    class Model(pxc.EnergyModule):
        def __init__(self, dims, act_fn):
            super().__init__()
            self.act_fn = pcx.static(act_fn)
            self.layers = [pxnn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]
            self.vodes = [pxc.Vode() for _ in dims[1:-1]] + [pxc.Vode(pxc.se_energy)]
            self.vodes[-1].h.frozen = True

        def __call__(self, x, y, beta=1.0):
            for v, lay in zip(self.vodes[:-1], self.layers[:-1]):
                x = v(self.act_fn(lay(x)))
            self.vodes[-1](self.layers[-1](x))
            if y is not None:
                u = self.vodes[-1].get("u")
                self.vodes[-1].set("h", u - beta * (u - y))
            return self.vodes[-1].get("u")

    mask = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))

    @pxf.vmap(mask, in_axes=(0, 0), out_axes=0, axis_name="batch")
    def forward(x, y, *, model):
        return model(x, y)

    @pxf.vmap(mask, in_axes=(0,), out_axes=(None, 0), axis_name="batch")
    def energy(x, *, model):
        y_ = model(x, None)
        return jax.lax.psum(model.energy(), "batch"), y_

    steps = make_steps(jax, pxc, pxnn, pxu, pxf, forward, energy)
    return dict(jax=jax, optax=optax, pcx=pcx, pxc=pxc, pxnn=pxnn, pxu=pxu,
                Model=Model, forward=forward, **steps)


def make_steps(jax, pxc, pxnn, pxu, pxf, forward, energy):
    """train_on_batch and eval_on_batch exactly as PCX's examples/PC_SE.py writes them."""
    @pxf.jit(static_argnums=0)
    def train_on_batch(T, x, y, *, model, optim_w, optim_h):
        model.train()
        with pxu.step(model, (pxc.STATUS.INIT, None), clear_params=pxc.VodeParam.Cache):
            forward(x, y, model=model)
        optim_h.init(pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))
        for _ in range(T):
            with pxu.step(model, clear_params=pxc.VodeParam.Cache):
                e, g = pxf.value_and_grad(
                    pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]),
                    has_aux=True)(energy)(x, model=model)
            optim_h.step(model, g["model"], True)
        optim_h.clear()
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            e, g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]),
                                      has_aux=True)(energy)(x, model=model)
        optim_w.step(model, g["model"], scale_by=1.0 / x.shape[0])
        return e[0] / x.shape[0]

    @pxf.jit()
    def eval_on_batch(x, *, model):
        model.eval()
        with pxu.step(model, pxc.STATUS.INIT,
                      clear_params=pxc.VodeParam.Cache | pxc.VodeParam):
            return forward(x, None, model=model).argmax(axis=-1)

    return dict(train_on_batch=train_on_batch, eval_on_batch=eval_on_batch)


def make_run(P, seed, n_batches, epochs):
    """Model and optimisers as PCX's PC_SE.py main() builds them, for one seed."""
    pxc, pxu, optax = P["pxc"], P["pxu"], P["optax"]
    P["pcx"].RKG.seed(seed)
    model = P["Model"](HP["dims"], getattr(P["jax"].nn, HP["act_fn"]))
    B = HP["batch_size"]
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        P["forward"](np.zeros((B, HP["dims"][0]), np.float32), None, model=model)
    lr = HP["lr_w"]
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=lr, peak_value=HP["peak_factor"] * lr,
        warmup_steps=HP["warmup_fraction"] * n_batches * epochs,
        decay_steps=n_batches * epochs, end_value=HP["end_factor"] * lr, exponent=1.0)
    optim_h = pxu.Optim(lambda: optax.chain(
        optax.sgd(HP["lr_x"], momentum=HP["momentum_x"])))
    optim_w = pxu.Optim(lambda: optax.adamw(schedule, weight_decay=HP["wd"]),
                        pxu.M(P["pxnn"].LayerParam)(model))
    return model, optim_w, optim_h


def first_weight(P, model):
    return model.layers[0].nn.weight.get()


def snapshot(tree):
    """Every DynamicParam in `tree` with its current value (pcx modules do not deepcopy)."""
    from pcx.core._tree import tree_apply
    from pcx.core._parameter import DynamicParam
    out = []
    tree_apply(lambda p: out.append((p, p.get())), lambda x: isinstance(x, DynamicParam),
               tree, recursive=False)
    return out


def compile_steps(P, model, optim_w, optim_h, T):
    """Compiles both jitted steps on the real model, then puts back every parameter and
    optimiser state, so training starts from the untouched initialisation. (A second model
    built the same way does not hit the jit cache: pcx recompiles for it.)"""
    saved = snapshot((model, optim_w, optim_h))
    B, d0, K = HP["batch_size"], HP["dims"][0], HP["dims"][-1]
    x = np.zeros((B, d0), np.float32)
    y = np.zeros((B, K), np.float32)
    t0 = time.perf_counter()
    P["train_on_batch"](T, x, y, model=model, optim_w=optim_w, optim_h=optim_h)
    first_weight(P, model).block_until_ready()
    P["eval_on_batch"](x, model=model).block_until_ready()
    secs = time.perf_counter() - t0
    for p, v in saved:
        p.set(v)
    return secs


def train_epoch(P, model, optim_w, optim_h, xtr, ytr, rng, T):
    B = HP["batch_size"]
    perm = rng.permutation(len(xtr))
    n = len(xtr) // B
    onehot = np.eye(HP["dims"][-1], dtype=np.float32)
    t0 = time.perf_counter()
    energies = []
    for i in range(n):
        idx = perm[i * B:(i + 1) * B]
        energies.append(P["train_on_batch"](T, xtr[idx], onehot[ytr[idx]],
                                            model=model, optim_w=optim_w, optim_h=optim_h))
    first_weight(P, model).block_until_ready()
    secs = time.perf_counter() - t0
    return secs, float(np.mean(np.asarray(P["jax"].device_get(energies))))


def evaluate(P, model, xte, yte):
    """acc: PCX's drop_last=True test loader (full batches only); acc_full: all images."""
    B = HP["batch_size"]
    n_full = len(xte) // B
    t0 = time.perf_counter()
    preds = []
    for i in range(-(-len(xte) // B)):
        xb = xte[i * B:(i + 1) * B]
        if len(xb) < B:
            xb = np.concatenate([xb, np.zeros((B - len(xb), xb.shape[1]), xb.dtype)])
        preds.append(P["eval_on_batch"](xb, model=model))
    pred = np.concatenate([np.asarray(p) for p in preds])[:len(xte)]
    secs = time.perf_counter() - t0
    ok = pred == yte
    return secs, float(ok[:n_full * B].mean()), float(ok.mean())


def run_seed(P, seed, data, epochs, T):
    xtr, ytr, xte, yte = data
    n_batches = len(xtr) // HP["batch_size"]
    model, optim_w, optim_h = make_run(P, seed, n_batches, epochs)
    compile_s = compile_steps(P, model, optim_w, optim_h, T)
    print(f"seed {seed}: compile {compile_s:.2f} s", flush=True)
    rng = np.random.RandomState(seed)
    rows = []
    for e in range(epochs):
        tr_s, energy = train_epoch(P, model, optim_w, optim_h, xtr, ytr, rng, T)
        te_s, acc, acc_full = evaluate(P, model, xte, yte)
        rows.append(dict(epoch=e + 1, train_s=tr_s, test_s=te_s, acc=acc,
                         acc_full=acc_full, train_energy_final=energy))
        print(f"seed {seed} epoch {e + 1:3d}  train {tr_s:6.2f} s  test {te_s:5.2f} s  "
              f"acc {acc:.4f}  acc_full {acc_full:.4f}  energy {energy:.4f}", flush=True)
    return dict(seed=seed, compile_s=compile_s, epochs=rows)


def machine_facts(cpus, threads):
    import jax
    import jaxlib
    import optax
    import equinox
    from importlib.metadata import version
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(cpu_model=model, cpus_online=os.cpu_count(), cpus_used=cpus,
                threads=threads, xla_flags=os.environ.get("XLA_FLAGS", ""),
                python=platform.python_version(), jax=jax.__version__,
                jaxlib=jaxlib.__version__, optax=optax.__version__,
                equinox=equinox.__version__, pcx=version("pcx"),
                backend=jax.default_backend(),
                date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                command=" ".join([os.path.basename(sys.executable)] + sys.argv))


def summarise(runs):
    finals = [r["epochs"][-1]["acc"] for r in runs]
    finals_full = [r["epochs"][-1]["acc_full"] for r in runs]
    secs = [row["train_s"] for r in runs for row in r["epochs"]]
    out = dict(final_acc=finals, final_acc_mean=statistics.mean(finals),
               final_acc_full=finals_full, final_acc_full_mean=statistics.mean(finals_full),
               train_s_per_epoch_median=statistics.median(secs),
               compile_s=[r["compile_s"] for r in runs])
    if len(finals) > 1:
        out["final_acc_std"] = statistics.stdev(finals)
    return out


def main(argv=None):
    args = parse_args(argv)
    cpus = limit_threads(args.threads)
    data = load_data(args)
    P = build_pcx()
    facts = machine_facts(cpus, args.threads)
    print(json.dumps(facts), flush=True)
    runs = [run_seed(P, s, data, args.epochs, args.T) for s in range(args.seeds)]
    summary = summarise(runs)
    print("seed  final acc  final acc_full  median train s/epoch")
    for r in runs:
        last = r["epochs"][-1]
        med = statistics.median(row["train_s"] for row in r["epochs"])
        print(f"{r['seed']:4d}  {last['acc']:.4f}     {last['acc_full']:.4f}          {med:.2f}")
    print(f"mean  {summary['final_acc_mean']:.4f}     {summary['final_acc_full_mean']:.4f}"
          f"          {summary['train_s_per_epoch_median']:.2f} (all epochs)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=facts, hp=dict(HP, T=args.T, epochs=args.epochs),
                           summary=summary, runs=runs), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
