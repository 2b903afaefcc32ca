#!/usr/bin/env python3
"""Golden-fixture generator: drives the reference Python package pcn-torch 1.1.0.

What this proves
----------------
Each fixture records, for one small fixed problem, the complete observable
behaviour of pcn-torch 1.1.0 (``train_pcn`` followed by ``test_pcn``):
the initial weights, the exact latent initialisations used by every
``init_latents`` call, and the recorded outputs (every inference / learning
step energy, the callback event trace, the TrainHistory lists, the final
weights, the test result dict and the per-sample test predictions).  The C
re-implementation is fed the same inputs and latents and must reproduce the
outputs within floating-point tolerance.  Nothing here re-implements
pcn-torch: the package itself is run, and only its ``init_latents`` (to
inject known latents) and ``compute_errors`` (to observe predictions) are
wrapped on the model instance.  The one exception is the ``cls_plateau``
case: pcn-torch 1.1.0 has no reduce-on-plateau schedule, so it is emulated
on top of ``train_pcn`` (one ``train_pcn`` call per batch, see
``run_plateau``).

How to run
----------
    pip install pcn-torch==1.1.0 torch
    python3 tests/golden/gen_golden.py [outdir]     # default outdir: this folder

Everything runs on the CPU, float32, one thread, with a fixed seed per case.

Fixture format
--------------
Lines starting with ``#`` are comments.  Every other line is one array:
``name count v0 v1 ... v{count-1}`` (single spaces, one line).  Floats are
``repr(float(v))``, ints plain integers; scalars are arrays of count 1.
"""

from __future__ import annotations

import math
import os
import sys

import torch
from torch.utils.data import DataLoader, TensorDataset

import pcn_torch
from pcn_torch import (
    PredictiveCodingNetwork,
    TrainCallback,
    TrainConfig,
    test_pcn,
    train_pcn,
)

assert pcn_torch.__version__ == "1.1.0", pcn_torch.__version__

ACT_CODES = {"relu": 0, "tanh": 1, "sigmoid": 2, "identity": 3}
TASK_CODES = {"classification": 0, "regression": 1}

EV_TRAIN_START = 0
EV_EPOCH_START = 1
EV_BATCH_START = 2
EV_INFER = 3
EV_LEARN = 4
EV_BATCH_END = 5
EV_EPOCH_END = 6
EV_LR_REDUCED = 7
EV_TRAIN_END = 8

MAX_FIXTURE_BYTES = 250 * 1024
MAX_TOTAL_BYTES = 1024 * 1024


# ---------------------------------------------------------------------------
# Recording callback
# ---------------------------------------------------------------------------


class Recorder(TrainCallback):
    """Records every callback call pcn-torch makes, in order."""

    def __init__(self) -> None:
        self.events: list[int] = []
        self.infer_energy: list[float] = []
        self.learn_energy: list[float] = []
        self.infer_steps: list[int] = []
        self.learn_steps: list[int] = []
        self.lr_reduced: list[tuple[float, float]] = []
        self.batch_end: list[tuple[int, float, float]] = []

    def on_train_start(self, config, history) -> None:
        self.events.append(EV_TRAIN_START)

    def on_epoch_start(self, epoch, num_epochs) -> None:
        self.events.append(EV_EPOCH_START)

    def on_batch_start(self, batch, num_batches) -> None:
        self.events.append(EV_BATCH_START)
        self.infer_steps.append(0)
        self.learn_steps.append(0)

    def on_inference_step(self, step, energy) -> None:
        self.events.append(EV_INFER)
        self.infer_energy.append(float(energy))
        self.infer_steps[-1] += 1

    def on_learning_step(self, step, energy) -> None:
        self.events.append(EV_LEARN)
        self.learn_energy.append(float(energy))
        self.learn_steps[-1] += 1

    def on_batch_end(self, batch, batch_energy, pre_learn_energy) -> None:
        self.events.append(EV_BATCH_END)
        self.batch_end.append((int(batch), float(batch_energy), float(pre_learn_energy)))

    def on_epoch_end(self, epoch, history) -> None:
        self.events.append(EV_EPOCH_END)

    def on_lr_reduced(self, old_lr, new_lr) -> None:
        self.events.append(EV_LR_REDUCED)
        self.lr_reduced.append((float(old_lr), float(new_lr)))

    def on_train_end(self, history) -> None:
        self.events.append(EV_TRAIN_END)


# ---------------------------------------------------------------------------
# Instance hooks: injected latents and observed predictions
# ---------------------------------------------------------------------------


class Hooks:
    """Wraps model.init_latents / model.compute_errors on one model instance.

    init_latents(B) draws the latents from a private seeded generator
    (torch.randn), records them, and installs clones into model.latents
    (pcn-torch updates latents in place).  compute_errors records
    model.predict() after every call while ``self.testing`` is set, keeping
    the last one per test batch (a test batch starts at init_latents).
    """

    def __init__(self, model: PredictiveCodingNetwork, seed: int) -> None:
        self.model = model
        self.gen = torch.Generator().manual_seed(seed)
        self.dims = list(model._dims)
        self.latent_calls: list[list[torch.Tensor]] = []
        self.testing = False
        self.test_yhat: list[torch.Tensor] = []  # last predict() per test batch
        self.test_ce_calls: list[int] = []  # compute_errors calls per test batch
        orig_compute_errors = model.compute_errors

        def init_latents(batch_size: int) -> None:
            lat = [
                torch.randn(batch_size, d, generator=self.gen, dtype=torch.float32)
                for d in self.dims[1:]
            ]
            self.latent_calls.append([t.clone() for t in lat])
            model.latents = [t.clone() for t in lat]
            if self.testing:
                self.test_yhat.append(None)  # type: ignore[arg-type]
                self.test_ce_calls.append(0)

        def compute_errors(x, y=None):
            out = orig_compute_errors(x, y)
            if self.testing:
                self.test_yhat[-1] = model.predict().detach().clone()
                self.test_ce_calls[-1] += 1
            return out

        model.init_latents = init_latents  # type: ignore[method-assign]
        model.compute_errors = compute_errors  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
# Case construction
# ---------------------------------------------------------------------------


def make_case(spec: dict):
    torch.manual_seed(spec["seed"])
    dims = spec["dims"]
    K = spec["output_dim"]
    n_train, n_test = spec["n_train"], spec["n_test"]
    train_x = torch.rand(n_train, dims[0], dtype=torch.float32)
    test_x = torch.rand(n_test, dims[0], dtype=torch.float32)
    if spec["task"] == "classification":
        train_y = torch.randint(0, K, (n_train,), dtype=torch.long)
        test_y = torch.randint(0, K, (n_test,), dtype=torch.long)
    else:
        train_y = (torch.rand(n_train, K, dtype=torch.float32) * 2.0 - 1.0) * 0.8
        test_y = (torch.rand(n_test, K, dtype=torch.float32) * 2.0 - 1.0) * 0.8

    # Initial weights: xavier_uniform_ like PCNLayer does (out x in).
    w_init = []
    for l in range(len(dims) - 1):
        w = torch.empty(dims[l], dims[l + 1], dtype=torch.float32)
        torch.nn.init.xavier_uniform_(w)
        w_init.append(w)
    wout = torch.empty(K, dims[-1], dtype=torch.float32)
    torch.nn.init.xavier_uniform_(wout)

    model = PredictiveCodingNetwork(
        dims=dims, activation=spec["activation"], output_dim=K, mode=spec["task"]
    )
    with torch.no_grad():
        for l, w in enumerate(w_init):
            assert model.layers[l].weight.shape == w.shape
            model.layers[l].weight.copy_(w)
        assert model._readout.weight.shape == wout.shape
        model._readout.weight.copy_(wout)

    data = dict(
        train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
        w_init=w_init, wout=wout,
    )
    return model, data


def make_config(spec: dict, callback: TrainCallback, **over) -> TrainConfig:
    kw = dict(
        task=spec["task"],
        T_infer=spec["t_infer"],
        T_infer_test=spec["t_infer_test"],
        T_learn=spec["t_learn"],
        lr_infer=spec["lr_infer"],
        lr_learn=spec["lr_learn"],
        num_epochs=spec["num_epochs"],
        early_stop_threshold=spec["early_stop_threshold"],
        energy_window_size=spec["energy_window_size"],
        use_mixed_precision=False,
        lr_learn_steps=spec.get("lr_steps"),
        callback=callback,
    )
    kw.update(over)
    return TrainConfig(**kw)


def hist_dict(h) -> dict:
    return dict(
        per_batch=list(h.energy.per_batch),
        per_batch_pre_learn=list(h.energy.per_batch_pre_learn),
        per_epoch=list(h.energy.per_epoch),
        per_epoch_pre_learn=list(h.energy.per_epoch_pre_learn),
        train_loss=list(h.train_loss),
        train_accuracy=list(h.train_accuracy),
        test_loss=list(h.test_loss),
        test_accuracy=list(h.test_accuracy),
        lr_learn_per_epoch=list(h.lr_learn_per_epoch),
    )


def run_native(spec, model, data, rec):
    """Plain pcn-torch train_pcn (no / manual-step schedule)."""
    loader = DataLoader(
        TensorDataset(data["train_x"], data["train_y"]),
        batch_size=spec["batch_size"], shuffle=False, drop_last=False,
    )
    config = make_config(spec, rec)
    history = train_pcn(model, loader, config)
    return config, hist_dict(history)


class _InnerRecorder(Recorder):
    """Per-batch recorder for the plateau emulation (events filtered later)."""


def run_plateau(spec, model, data, rec):
    """Reduce-on-plateau emulated on top of pcn-torch 1.1.0.

    One train_pcn call per batch (DataLoader over just that batch's rows,
    num_epochs=1, lr_learn = current lr).  After each batch, on the batch's
    post-learning energy:
        if e < best: best = e; patience = 0
        else: patience += 1; if patience >= lr_patience: lr *= factor; patience = 0
    best starts at +inf and (like patience) persists across epochs.  The
    rule logically runs after the batch energy is recorded and before the
    batch's train-accuracy free inference; that free inference does not
    depend on lr_learn, so running it inside the per-batch train_pcn call is
    equivalent.  The outer event trace is that of one continuous train_pcn:
    ... 2 3* 4* [7] 5 ... with one 0 at the start, 1/6 per epoch, 8 at the end.
    The epoch-level history is accumulated exactly as train_pcn does.
    """
    n = data["train_x"].shape[0]
    bs = spec["batch_size"]
    lr = spec["lr_learn"]
    factor = spec["lr_decay_factor"]
    patience_limit = spec["lr_patience"]
    best = math.inf
    patience = 0
    is_cls = spec["task"] == "classification"

    hist = dict(
        per_batch=[], per_batch_pre_learn=[], per_epoch=[], per_epoch_pre_learn=[],
        train_loss=[], train_accuracy=[], test_loss=[], test_accuracy=[],
        lr_learn_per_epoch=[],
    )
    rec.events.append(EV_TRAIN_START)
    config = None
    for epoch in range(spec["num_epochs"]):
        rec.events.append(EV_EPOCH_START)
        epoch_energy = 0.0
        epoch_pre = 0.0
        epoch_correct = 0
        epoch_total = 0
        for batch_idx, start in enumerate(range(0, n, bs)):
            xb = data["train_x"][start:start + bs]
            yb = data["train_y"][start:start + bs]
            B = xb.shape[0]
            inner = _InnerRecorder()
            config = make_config(spec, inner, lr_learn=lr, num_epochs=1, lr_learn_steps=None)
            loader = DataLoader(TensorDataset(xb, yb), batch_size=B, shuffle=False)
            h = train_pcn(model, loader, config)
            assert inner.events[:2] == [EV_TRAIN_START, EV_EPOCH_START]
            assert inner.events[-3:] == [EV_BATCH_END, EV_EPOCH_END, EV_TRAIN_END]
            assert EV_LR_REDUCED not in inner.events
            # batch body: 2 3* 4*
            rec.events.extend(inner.events[2:-3])
            rec.infer_energy.extend(inner.infer_energy)
            rec.learn_energy.extend(inner.learn_energy)
            rec.infer_steps.extend(inner.infer_steps)
            rec.learn_steps.extend(inner.learn_steps)

            batch_energy = h.energy.per_batch[-1]
            pre_learn = h.energy.per_batch_pre_learn[-1]
            hist["per_batch"].append(batch_energy)
            hist["per_batch_pre_learn"].append(pre_learn)
            epoch_pre += pre_learn * B
            epoch_energy += batch_energy * B

            # plateau rule
            if batch_energy < best:
                best = batch_energy
                patience = 0
            else:
                patience += 1
                if patience >= patience_limit:
                    old = lr
                    lr *= factor
                    patience = 0
                    rec.on_lr_reduced(old, lr)

            if is_cls:
                acc = h.train_accuracy[-1]
                correct = round(acc * B)
                assert correct / B == acc
                epoch_correct += correct
            epoch_total += B

            _, be, pe = inner.batch_end[-1]
            rec.events.append(EV_BATCH_END)
            rec.batch_end.append((batch_idx, be, pe))

        hist["per_epoch"].append(epoch_energy / epoch_total)
        hist["per_epoch_pre_learn"].append(epoch_pre / epoch_total)
        hist["train_loss"].append(epoch_energy / epoch_total)
        if is_cls:
            hist["train_accuracy"].append(epoch_correct / epoch_total)
        hist["lr_learn_per_epoch"].append(lr)
        rec.events.append(EV_EPOCH_END)
    rec.events.append(EV_TRAIN_END)
    return config, hist


# ---------------------------------------------------------------------------
# Fixture writing
# ---------------------------------------------------------------------------


def fmt(v) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


def flat_floats(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t.detach().to(torch.float32).reshape(-1).tolist()]


def run_case(spec: dict, outdir: str) -> str:
    torch.set_num_threads(1)
    model, data = make_case(spec)
    hooks = Hooks(model, spec["seed"] + 1000)
    rec = Recorder()

    if spec["lr_schedule"] == 1:
        config, hist = run_plateau(spec, model, data, rec)
    else:
        config, hist = run_native(spec, model, data, rec)
    n_train_calls = len(hooks.latent_calls)

    final_w = [model.layers[l].weight.detach().clone() for l in range(len(model.layers))]
    final_wout = model._readout.weight.detach().clone()

    test_loader = DataLoader(
        TensorDataset(data["test_x"], data["test_y"]),
        batch_size=spec["test_batch_size"], shuffle=False, drop_last=False,
    )
    hooks.testing = True
    result = test_pcn(model, test_loader, config)
    hooks.testing = False

    is_cls = spec["task"] == "classification"
    K = spec["output_dim"]
    yhat = torch.cat(hooks.test_yhat, dim=0)
    assert yhat.shape == (spec["n_test"], K)
    test_infer_steps = [c - 1 for c in hooks.test_ce_calls]
    if is_cls:
        test_pred = [int(v) for v in yhat.argmax(dim=1).tolist()]
        n_correct = sum(int(p == t) for p, t in zip(test_pred, data["test_y"].tolist()))
        assert n_correct / spec["n_test"] == result["accuracy"]
        test_mse: list[float] = []
    else:
        test_pred = []
        diffs = [
            (float(a) - float(b)) ** 2
            for a, b in zip(flat_floats(yhat), flat_floats(data["test_y"]))
        ]
        test_mse = [sum(diffs) / len(diffs)]

    # ---- sanity assertions ------------------------------------------------
    n_train_batches = math.ceil(spec["n_train"] / spec["batch_size"])
    n_batches_total = n_train_batches * spec["num_epochs"]
    assert spec["n_train"] % spec["batch_size"] != 0
    assert spec["n_test"] % spec["test_batch_size"] != 0
    assert len(rec.infer_steps) == n_batches_total
    assert len(hist["per_batch"]) == n_batches_total
    assert sum(rec.infer_steps) == len(rec.infer_energy)
    assert sum(rec.learn_steps) == len(rec.learn_energy)
    per_batch_calls = 2 if is_cls else 1
    assert n_train_calls == n_batches_total * per_batch_calls
    assert len(hooks.latent_calls) == n_train_calls + math.ceil(
        spec["n_test"] / spec["test_batch_size"]
    )
    assert rec.events.count(EV_LR_REDUCED) == len(rec.lr_reduced)
    assert rec.events[0] == EV_TRAIN_START and rec.events[-1] == EV_TRAIN_END
    for check in spec.get("checks", []):
        check(spec, rec, hist, test_infer_steps)

    # ---- write -------------------------------------------------------------
    lines: list[str] = []

    def put(name: str, values) -> None:
        values = list(values)
        assert all(c.isdigit() or c == "_" or ("a" <= c <= "z") for c in name), name
        lines.append(" ".join([name, str(len(values))] + [fmt(v) for v in values]))

    def put_int(name: str, values) -> None:
        put(name, [int(v) for v in values])

    def put_float(name: str, values) -> None:
        put(name, [float(v) for v in values])

    dims = spec["dims"]
    put_int("dims", dims)
    put_int("output_dim", [K])
    put_int("activation", [ACT_CODES[spec["activation"]]])
    put_int("task", [TASK_CODES[spec["task"]]])
    put_int("t_infer", [spec["t_infer"]])
    put_int("t_infer_test", [spec["t_infer_test"]])
    put_int("t_learn", [spec["t_learn"] or 0])
    put_float("lr_infer", [spec["lr_infer"]])
    put_float("lr_learn", [spec["lr_learn"]])
    put_int("num_epochs", [spec["num_epochs"]])
    put_float("early_stop_threshold", [spec["early_stop_threshold"] or 0.0])
    put_int("energy_window_size", [spec["energy_window_size"]])
    put_int("lr_schedule", [spec["lr_schedule"]])
    put_float("lr_decay_factor", [spec["lr_decay_factor"]])
    put_int("lr_patience", [spec["lr_patience"]])
    steps = []
    for ep, b, lr in spec.get("lr_steps") or []:
        steps += [int(ep), int(b), float(lr)]
    put("lr_steps", steps)
    put_int("batch_size", [spec["batch_size"]])
    put_int("test_batch_size", [spec["test_batch_size"]])
    put_int("n_train", [spec["n_train"]])
    put_int("n_test", [spec["n_test"]])
    put_float("train_x", flat_floats(data["train_x"]))
    put_float("test_x", flat_floats(data["test_x"]))
    if is_cls:
        put_int("train_y", data["train_y"].tolist())
        put_int("test_y", data["test_y"].tolist())
    else:
        put_float("train_y", flat_floats(data["train_y"]))
        put_float("test_y", flat_floats(data["test_y"]))
    for l, w in enumerate(data["w_init"]):
        put_float(f"w{l}", flat_floats(w))
    put_float("wout", flat_floats(data["wout"]))
    lat_flat: list[float] = []
    for call in hooks.latent_calls:
        for t in call:
            lat_flat += flat_floats(t)
    put_float("latents", lat_flat)
    put_int("latent_calls", [len(hooks.latent_calls)])
    put_int("latent_batch", [call[0].shape[0] for call in hooks.latent_calls])

    put_float("infer_energy", rec.infer_energy)
    put_int("infer_steps", rec.infer_steps)
    put_float("learn_energy", rec.learn_energy)
    put_int("learn_steps", rec.learn_steps)
    for key in (
        "per_batch", "per_batch_pre_learn", "per_epoch", "per_epoch_pre_learn",
        "train_loss", "train_accuracy", "test_loss", "test_accuracy",
        "lr_learn_per_epoch",
    ):
        put_float(key, hist[key])
    put_int("events", rec.events)
    put_float("lr_reduced", [v for pair in rec.lr_reduced for v in pair])
    put("batch_end", [v for (b, e, p) in rec.batch_end for v in (int(b), float(e), float(p))])
    for l, w in enumerate(final_w):
        put_float(f"final_w{l}", flat_floats(w))
    put_float("final_wout", flat_floats(final_wout))
    put_float("test_result_accuracy", [result["accuracy"]])
    put_float("test_result_energy", [result["energy"]])
    put_float("test_yhat", flat_floats(yhat))
    put_int("test_pred", test_pred)
    put_float("test_mse", test_mse)
    put_int("test_infer_steps", test_infer_steps)

    names = [ln.split(" ", 1)[0] for ln in lines]
    assert len(names) == len(set(names)), "duplicate array names"

    header = [
        f"# pcn-torch golden fixture: case {spec['name']}",
        f"# generated by tests/golden/gen_golden.py with pcn-torch {pcn_torch.__version__}, "
        f"torch {torch.__version__}, CPU float32, 1 thread, seed {spec['seed']}",
        f"# {spec['desc']}",
        "# format: name count v0 ... v{count-1}; tensor data are float32 values and energies,",
        "# lrs and accuracies are the Python doubles pcn-torch returns, all written as repr(float(v))",
    ]
    path = os.path.join(outdir, f"{spec['name']}.txt")
    text = "\n".join(header + lines) + "\n"
    with open(path, "w", encoding="ascii") as f:
        f.write(text)
    size = os.path.getsize(path)
    assert size < MAX_FIXTURE_BYTES, (path, size)
    return path


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


def _check_early_stop(spec, rec, hist, test_infer_steps):
    assert any(s < spec["t_infer"] for s in rec.infer_steps), rec.infer_steps
    assert any(s < spec["t_infer_test"] for s in test_infer_steps), test_infer_steps


def _check_plateau(spec, rec, hist, test_infer_steps):
    assert len(rec.lr_reduced) >= 2, rec.lr_reduced


def _check_plateau_emulation(spec, rec, hist, test_infer_steps):
    """Self-check of run_plateau: with the rule disabled (patience never
    reached) the emulation must match one native train_pcn call exactly."""
    ref = dict(spec, lr_patience=10**9, lr_schedule=0, checks=[])
    out = []
    for runner in (run_native, run_plateau):
        torch.set_num_threads(1)
        model, data = make_case(ref)
        Hooks(model, ref["seed"] + 1000)
        r = Recorder()
        _, h = runner(ref, model, data, r)
        weights = [flat_floats(p) for p in model.parameters()]
        out.append((h, r.events, r.infer_energy, r.learn_energy, r.batch_end, weights))
    assert out[0] == out[1], "plateau emulation diverges from native train_pcn"


def _check_steps(spec, rec, hist, test_infer_steps):
    assert len(rec.lr_reduced) == 3, rec.lr_reduced


BASE = dict(
    dims=[12, 10, 8, 6],
    output_dim=4,
    n_train=13,
    n_test=7,
    batch_size=5,
    test_batch_size=4,
    num_epochs=2,
    t_infer=20,
    t_infer_test=20,
    t_learn=None,
    lr_infer=0.05,
    lr_learn=0.01,
    early_stop_threshold=None,
    energy_window_size=10,
    lr_schedule=0,
    lr_decay_factor=0.5,
    lr_patience=1,
    lr_steps=None,
)

CASES = [
    dict(
        BASE,
        name="cls_relu",
        desc="classification, relu, no schedule, no early stop, T_learn=None (batch size)",
        seed=1234,
        task="classification",
        activation="relu",
    ),
    dict(
        BASE,
        name="reg_tanh",
        desc="regression, tanh, K=3, early stopping fires in training and test, T_learn=7",
        seed=2024,
        task="regression",
        activation="tanh",
        output_dim=3,
        t_infer=40,
        t_infer_test=60,
        t_learn=7,
        lr_infer=0.1,
        early_stop_threshold=6e-3,
        energy_window_size=5,
        checks=[_check_early_stop],
    ),
    dict(
        BASE,
        name="cls_plateau",
        desc="classification, sigmoid, reduce-on-plateau emulated on top of pcn-torch "
        "(per-batch rule on post-learning energy, patience 1, factor 0.5)",
        seed=777,
        task="classification",
        activation="sigmoid",
        lr_schedule=1,
        lr_learn=0.5,
        lr_decay_factor=0.5,
        lr_patience=1,
        checks=[_check_plateau, _check_plateau_emulation],
    ),
    dict(
        BASE,
        name="cls_steps",
        desc="classification, identity, manual lr_learn_steps [(0,0,0.05),(0,2,0.02),(1,1,0.005)]",
        seed=4242,
        task="classification",
        activation="identity",
        dims=[12, 9, 7, 5],
        lr_learn=0.01,
        lr_schedule=2,
        lr_steps=[(0, 0, 0.05), (0, 2, 0.02), (1, 1, 0.005)],
        checks=[_check_steps],
    ),
]


def main(argv: list[str]) -> int:
    outdir = argv[1] if len(argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    total = 0
    for spec in CASES:
        path = run_case(spec, outdir)
        size = os.path.getsize(path)
        total += size
        print(f"wrote {path} ({size} bytes)")
    assert total < MAX_TOTAL_BYTES, total
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
