#!/usr/bin/env python3
"""Golden-fixture generator for discriminative predictive coding (issue 15): drives PCX 0.6.3.

What this proves
----------------
For a tiny fixed network (dims 6-5-4-3, GELU hidden layers, identity output, batch 4, every
weight, bias, input and label set explicitly) the fixture records what PCX's own modules
compute, step by step, in the recipe's structure (PCX's examples/PC_SE.py): forward
initialisation of the latents, T = 3 inference steps with optax.sgd on the latents (energy
SUMMED over the batch, jax.lax.psum), the weight and bias gradients at the final latents
(gradient of the summed energy times 1/batch, as Optim.step(scale_by=1/B) does) and the
weights after ONE optax.adamw step. Nothing is re-implemented: pcx.nn.Linear,
pcx.predictive_coding.Vode / se_energy, pcx.utils.Optim, pcx.functional.vmap /
value_and_grad run it. One deliberate difference from the example: the output node is
clamped with h = y (the example writes h = u - beta * (u - y), beta = 1, which equals y only
up to float rounding); issue 15 clamps to the one-hot label.

Variants (name prefixes):
    mom_   latent optimizer optax.sgd(LR_X, momentum=0.1)  (the recipe's momentum)
    m0_    latent optimizer optax.sgd(LR_X, momentum=0.0)  (plain gradient steps)
    ipc_   iPC: after every inference step the weights take an adamw step with the
           gradient of the batch-mean energy at the latents BEFORE that step (PCX's
           iPC_SE.py order: one value_and_grad for latents and weights, then optim_h.step,
           then optim_w.step); momentum 0.1 as in mom_.

How to run
----------
    python3 -m venv /tmp/w/pcxvenv
    /tmp/w/pcxvenv/bin/pip install pcx==0.6.3 "jax[cpu]<0.5" h5py
    /tmp/w/pcxvenv/bin/python tests/golden/gen_pcx_golden.py [outdir]   # default: this folder

CPU, float32, deterministic (no random numbers inside PCX are used: every value is set).

Fixture format
--------------
Lines starting with ``#`` are comments. Every other line is one array:
``name count v0 v1 ... v{count-1}`` (single spaces), floats as ``repr(float(v))``, ints as
plain integers; matrices row-major. The header comment of the output lists every name and
its shape.
"""

from __future__ import annotations

import os
import sys

import numpy as np

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
import pcx  # noqa: E402
import pcx.functional as pxf  # noqa: E402
import pcx.nn as pxnn  # noqa: E402
import pcx.predictive_coding as pxc  # noqa: E402
import pcx.utils as pxu  # noqa: E402

DIMS = [6, 5, 4, 3]
B = 4
T = 3
LR_X = 0.1
MOMENTUM = 0.1
ADAM = dict(learning_rate=0.01, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=0.01)
LABELS = [0, 2, 1, 2]
DATA_SEED = 20240615


class Model(pxc.EnergyModule):
    """PCX's examples/PC_SE.py LinearModel, with the output clamped to exactly y."""

    def __init__(self, dims, act_fn):
        super().__init__()
        self.act_fn = pcx.static(act_fn)
        self.layers = [pxnn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]
        self.vodes = [pxc.Vode() for _ in dims[1:-1]] + [pxc.Vode(pxc.se_energy)]
        self.vodes[-1].h.frozen = True

    def __call__(self, x, y):
        for v, lay in zip(self.vodes[:-1], self.layers[:-1]):
            x = v(self.act_fn(lay(x)))
        self.vodes[-1](self.layers[-1](x))
        if y is not None:
            self.vodes[-1].set("h", y)
        return self.vodes[-1].get("u")


MASK = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))


@pxf.vmap(MASK, in_axes=(0, 0), out_axes=0, axis_name="batch")
def forward(x, y, *, model):
    return model(x, y)


@pxf.vmap(MASK, in_axes=(0,), out_axes=(None, 0), axis_name="batch")
def energy(x, *, model):
    """PCX's examples/PC_SE.py energy: the batch SUM of the per-sample energies."""
    y_ = model(x, None)
    return jax.lax.psum(model.energy(), "batch"), y_


@pxf.vmap(MASK, in_axes=(0,), out_axes=0, axis_name="batch")
def energy_per_sample(x, *, model):
    model(x, None)
    return model.energy()


def latent_mask():
    """A fresh mask each time: .to() returns a configured mask, do not share one."""
    return pxu.M_hasnot(pxc.VodeParam, frozen=True)


def fixed_values():
    """Weights, biases (PCX's own init scale: U(-1/sqrt(in), 1/sqrt(in))), inputs, labels."""
    rng = np.random.RandomState(DATA_SEED)
    Ws, bs = [], []
    for a, b in zip(DIMS[:-1], DIMS[1:]):
        lim = 1.0 / np.sqrt(a)
        Ws.append(rng.uniform(-lim, lim, (b, a)).astype(np.float32))
        bs.append(rng.uniform(-lim, lim, (b,)).astype(np.float32))
    x0 = rng.uniform(-1.0, 1.0, (B, DIMS[0])).astype(np.float32)
    y = np.eye(DIMS[-1], dtype=np.float32)[LABELS]
    return Ws, bs, x0, y


def build(Ws, bs):
    model = Model(DIMS, jax.nn.gelu)
    for lay, W, b in zip(model.layers, Ws, bs):
        lay.nn.weight.set(jnp.asarray(W))
        lay.nn.bias.set(jnp.asarray(b))
    return model


def latents(model):
    return [np.asarray(v.h.get()) for v in model.vodes[:-1]]


def params(model):
    return ([np.asarray(l.nn.weight.get()) for l in model.layers],
            [np.asarray(l.nn.bias.get()) for l in model.layers])


@pxf.jit()
def _energies(x0, *, model):
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        e, _ = energy(x0, model=model)
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        eps = energy_per_sample(x0, model=model)
    return e, eps


def energies(model, x0):
    """(batch mean, per-sample) energy at the current latents."""
    e, eps = _energies(x0, model=model)
    return float(e) / B, np.asarray(eps)


def _vals(params):
    """A gradient pytree holds None where a parameter was not differentiated."""
    return [None if q is None else q.get() for q in params]


def _state(x0, model):
    """Latents, batch-sum and per-sample energy at the current state (inside a jit)."""
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        e, _ = energy(x0, model=model)
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        eps = energy_per_sample(x0, model=model)
    return dict(x=[v.h.get() for v in model.vodes[:-1]], e=e, eps=eps)


@pxf.jit(static_argnums=(0, 1))
def _inference(T, ipc, x0, y, *, model, optim_h, optim_w):
    """PCX's train_on_batch up to the learning step, recording every intermediate state.
    Per step: gradient of the summed energy w.r.t. the latents (and, if ipc, W and b),
    optim_h.step (sgd); if ipc also optim_w.step on 1/B of the weight gradient."""
    with pxu.step(model, (pxc.STATUS.INIT, None), clear_params=pxc.VodeParam.Cache):
        mu = forward(x0, y, model=model)
    optim_h.init(latent_mask()(model))
    out = [dict(_state(x0, model), mu=mu, yc=model.vodes[-1].h.get())]
    wrt = (latent_mask() | pxu.M(pxnn.LayerParam)) if ipc else latent_mask()
    for _ in range(T):
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            (e, _), g = pxf.value_and_grad(wrt.to([False, True]), has_aux=True)(energy)(
                x0, model=model)
        gl = g["model"].layers  # read before Optim.step: scale_by rescales g in place
        rec = dict(e_used=e, gx=_vals(v.h for v in g["model"].vodes[:-1]),
                   gW=_vals(l.nn.weight for l in gl), gb=_vals(l.nn.bias for l in gl))
        optim_h.step(model, g["model"], True)
        if ipc:
            optim_w.step(model, g["model"], scale_by=1.0 / x0.shape[0])
            rec.update(W=[l.nn.weight.get() for l in model.layers],
                       b=[l.nn.bias.get() for l in model.layers])
        out.append(dict(_state(x0, model), **rec))
    optim_h.clear()
    return out


@pxf.jit()
def _learn(x0, *, model, optim_w):
    """Gradient of the summed energy w.r.t. W, b at the current latents; adamw on 1/B of it."""
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        (e, _), g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]),
                                       has_aux=True)(energy)(x0, model=model)
    gl = g["model"].layers  # read before Optim.step: scale_by rescales g in place
    gW, gb = _vals(l.nn.weight for l in gl), _vals(l.nn.bias for l in gl)
    optim_w.step(model, g["model"], scale_by=1.0 / x0.shape[0])
    return e, gW, gb


def rec_grads(rec, p, sfx, gW, gb):
    for l, (w, b) in enumerate(zip(gW, gb), 1):
        rec[f"{p}gW{l}{sfx}"] = np.asarray(w) / np.float32(B)
        rec[f"{p}gb{l}{sfx}"] = np.asarray(b) / np.float32(B)


def record_steps(out, rec, p):
    L = len(DIMS) - 1
    rec[f"{p}mu{L}_s0"] = np.asarray(out[0]["mu"])
    rec[f"{p}x{L}_clamped"] = np.asarray(out[0]["yc"])
    for t, st in enumerate(out):
        if t > 0:
            rec[f"{p}energy_used_s{t}"] = float(st["e_used"]) / B
            for l, v in enumerate(st["gx"], 1):
                rec[f"{p}grad_x{l}_s{t}"] = np.asarray(v)
        for l, h in enumerate(st["x"], 1):
            rec[f"{p}x{l}_s{t}"] = np.asarray(h)
        rec[f"{p}energy_s{t}"] = float(st["e"]) / B
        rec[f"{p}energy_ps_s{t}"] = np.asarray(st["eps"])
        if "W" in st:
            rec_grads(rec, p, f"_s{t}", st["gW"], st["gb"])
            for l, (w, b) in enumerate(zip(st["W"], st["b"]), 1):
                rec[f"{p}W{l}_s{t}"], rec[f"{p}b{l}_s{t}"] = np.asarray(w), np.asarray(b)


def run_variant(p, momentum, ipc, rec):
    Ws, bs, x0, y = fixed_values()
    model = build(Ws, bs)
    optim_h = pxu.Optim(lambda: optax.chain(optax.sgd(LR_X, momentum=momentum)))
    optim_w = pxu.Optim(lambda: optax.adamw(**ADAM), pxu.M(pxnn.LayerParam)(model))
    out = _inference(T, ipc, x0, y, model=model, optim_h=optim_h, optim_w=optim_w)
    record_steps(out, rec, p)
    if ipc:
        return
    _, gW, gb = _learn(x0, model=model, optim_w=optim_w)
    rec_grads(rec, p, "", gW, gb)
    Ws, bs = params(model)
    for l, (w, b) in enumerate(zip(Ws, bs), 1):
        rec[f"{p}W{l}_new"], rec[f"{p}b{l}_new"] = w, b


def fmt(v) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return repr(float(v))


def header(rec) -> list[str]:
    from importlib.metadata import version
    L = len(DIMS) - 1
    lines = [
        "# PCX golden fixture: discriminative predictive coding (issue 15), case pcx_disc_small",
        f"# generated by tests/golden/gen_pcx_golden.py with pcx {version('pcx')}, "
        f"jax {jax.__version__}, optax {optax.__version__}, equinox {version('equinox')}, "
        "CPU float32",
        "# format: name count v0 ... v{count-1}; matrices row-major; floats repr(float(v))",
        f"# layers x0 (input, clamped) .. x{L} (output, clamped to one-hot y); W_l is "
        "d_l x d_{l-1} (out x in), b_l is d_l",
        f"# mu_l = f_l(x_(l-1) W_l^T + b_l); f = jax.nn.gelu (approximate=True, tanh form) "
        f"for l < {L}, identity for l = {L}",
        "# energy per sample = sum_l 0.5*||x_l - mu_l||^2; energy_* = batch mean, "
        "energy_ps_* = per sample [B]",
        "# inference: grad_x* = d(SUM over batch of energy)/dx_l (per sample); optax.sgd: "
        "m = g + momentum*m (m = 0 at s0), x -= lr_infer*m",
        "# s0 = after forward init; sK = after inference step K; energy_used_sK = the batch "
        "mean energy at the latents step K started from",
        "# gW*/gb* = d(batch MEAN energy)/dW at the final latents (PCX: grad of the sum, "
        "Optim.step scale_by=1/B); W*_new = after ONE optax.adamw step",
        "# adamw: mu=b1*mu+(1-b1)g; nu=b2*nu+(1-b2)g^2; u=(mu/(1-b1^t))/(sqrt(nu/(1-b2^t))"
        "+eps) + weight_decay*W; W -= lr*u (decay on biases too)",
        "# ipc_: per step t: grads at the latents before step t, latent sgd step, then adamw "
        "step on W,b (state kept across steps); ipc_W*_sK after step K",
    ]
    for name, v in rec.items():
        shape = "scalar" if np.ndim(v) == 0 else "x".join(map(str, np.shape(v)))
        lines.append(f"#   {name}: {shape}")
    return lines


def inputs(rec):
    Ws, bs, x0, y = fixed_values()
    rec["dims"] = np.array(DIMS)
    rec["batch"], rec["t_infer"] = B, T
    rec["gelu_approximate"] = 1
    rec["lr_infer"], rec["momentum"] = LR_X, MOMENTUM
    for k in ("learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay"):
        rec[f"adam_{k}"] = ADAM[k]
    for l, (w, b) in enumerate(zip(Ws, bs), 1):
        rec[f"W{l}"], rec[f"b{l}"] = w, b
    rec["x0"], rec["y"], rec["labels"] = x0, y, np.array(LABELS)


def write(rec, path):
    lines = header(rec)
    for name, v in rec.items():
        a = np.asarray(v).reshape(-1)
        lines.append(" ".join([name, str(a.size)] + [fmt(x) for x in a.tolist()]))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    outdir = argv[1] if len(argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    rec: dict = {}
    inputs(rec)
    run_variant("mom_", MOMENTUM, False, rec)
    run_variant("m0_", 0.0, False, rec)
    run_variant("ipc_", MOMENTUM, True, rec)
    path = os.path.join(outdir, "pcx_disc_small.txt")
    write(rec, path)
    print(f"wrote {path} ({len(rec)} arrays)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
