#!/usr/bin/env python3
"""Pictures of a pcn_dist training run, drawn from its metrics file (train --metrics).

    python3 jobs/plot_metrics.py METRICS.jsonl [-o OUTDIR] [--backend auto|matplotlib|gnuplot]

Writes PNG files into OUTDIR (default: the metrics file's folder), named after the metrics
file (STEM: its name without .jsonl), and prints the path of each, one per line:
  STEM-energy.png    energy before and after learning, per batch
  STEM-accuracy.png  train accuracy (epoch records) and test accuracy (test records) per
                     epoch; not written when the run has neither, and said so
  STEM-lr.png        the learning rate of the learning phase (lr_learn), per batch
  STEM-seconds.png   rank 0's seconds per phase per batch: inference, learning, collectives,
                     I/O (data), checkpoint where any, and the batch's wall clock
A y axis is logarithmic where its values are all positive and span 3x or more (energy, a
decaying learning rate, seconds). Notes go to stderr: what the file holds (batches, epochs,
tests) and each panel or curve left out and why (no test accuracy in a run without a test
split, or one stopped before its test).

The file's records are the ones io/pcn_io.h lists under "Metrics": "batch" (epoch, batch,
energy, pre_learn_energy, lr, rank0_seconds, seconds), "epoch" (epoch, train_accuracy) and
"test" (accuracy), with null for a value that is not a number. Batch numbers restart at 0
each epoch; the plots use a global batch index, epoch * batches per epoch + batch + 1, so a
run resumed with --resume (its lines appended to the same file) reads as one run, and a
batch recorded twice (a run that died after its last checkpoint and was resumed from it)
keeps its last record. A test record belongs to the epochs finished before it.

Parsing uses the Python standard library only. Drawing: matplotlib where it imports, else
gnuplot (its pngcairo terminal, else png); --backend chooses one.

Exit status: 0 the plots written; 1 the metrics file missing, unreadable, empty or malformed
(one line naming the file and the line); 2 a usage error, or no backend (one line saying
what to install); 3 the backend failed to draw.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys

PROG = "plot_metrics.py"
PHASES = [("inference", "inference"), ("learning", "learning"),
          ("collectives", "collectives"), ("io", "I/O (data)"), ("checkpoint", "checkpoint")]
# The keys each record must have, and whether each is an integer (else a number or null).
REQUIRED = {"batch": {"epoch": int, "batch": int, "energy": float, "pre_learn_energy": float,
                      "lr": float},
            "epoch": {"epoch": int},
            "test": {"accuracy": float}}


def die(code, message):
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(code)


def note(message):
    print(f"{PROG}: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------
# Reading the metrics file
# ----------------------------------------------------------------------------------------

def is_number(v):
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def check_record(where, rec):
    """Refuses (exit 1) a line that is not a metrics record: names the file and line."""
    if not isinstance(rec, dict) or not isinstance(rec.get("event"), str):
        die(1, f"{where}: not a metrics record (a JSON object with an \"event\")")
    for key, kind in REQUIRED.get(rec["event"], {}).items():
        if key not in rec:
            die(1, f"{where}: a {rec['event']} record without \"{key}\"")
        v = rec[key]
        ok = (isinstance(v, int) and not isinstance(v, bool) and v >= 0) if kind is int \
            else is_number(v)
        if not ok:
            want = "a whole number >= 0" if kind is int else "a number or null"
            die(1, f"{where}: \"{key}\" is {json.dumps(v)}, want {want}")
    phases = rec.get("rank0_seconds", {})
    if not isinstance(phases, dict) or not all(is_number(v) for v in phases.values()):
        die(1, f"{where}: \"rank0_seconds\" is not an object of numbers")


def read_records(path):
    """The file's records, in order; exit 1 with one line on a missing, empty or bad file."""
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except OSError as e:
        die(1, f"{path}: cannot read: {e.strerror}")
    records = []
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            die(1, f"{path}:{n}: not text (not UTF-8)")
        except ValueError as e:
            die(1, f"{path}:{n}: not JSON ({e.msg}, column {e.colno})")
        check_record(f"{path}:{n}", rec)
        records.append(rec)
    if not records:
        die(1, f"{path}: empty: no metrics records")
    return records


def value(rec, key):
    """rec[key] as a float, NaN where null or absent."""
    v = rec.get(key)
    return float(v) if v is not None else math.nan


def collect(path, records):
    """The run's batches in global order, its epochs and its tests (see the docstring)."""
    batches, epochs, tests, done, replaced = {}, {}, {}, 0, 0
    for rec in records:
        if rec["event"] == "batch":
            key = (rec["epoch"], rec["batch"])
            replaced += key in batches
            batches[key] = rec
        elif rec["event"] == "epoch":
            epochs[rec["epoch"]] = rec
            done = rec["epoch"] + 1
        elif rec["event"] == "test":
            tests[done] = rec   # a second test after the same epochs: the last one counts
    if not batches:
        die(1, f"{path}: no batch records: nothing to plot")
    per_epoch = max(b for _, b in batches) + 1
    order = sorted(batches)
    run = {"per_epoch": per_epoch, "x": [e * per_epoch + b + 1 for e, b in order],
           "batches": [batches[k] for k in order], "epochs": [epochs[e] for e in sorted(epochs)],
           "tests": sorted(tests.items())}
    summary = (f"{path}: {len(order)} batches, {len(epochs)} epoch(s) finished "
               f"({per_epoch} batches each), {len(tests)} test record(s)")
    if replaced:
        summary += f"; {replaced} batch record(s) recorded again by a resumed run, the last kept"
    run["summary"] = summary
    return run


# ----------------------------------------------------------------------------------------
# The figures, independent of the backend
# ----------------------------------------------------------------------------------------
# A figure: name, title, xlabel, ylabel, logy, series [(label, xs, ys, style)] with style
# "lines", "dashed" or "points", vlines (x of epoch boundaries), xrange (lo, hi) or None,
# yrange (lo, hi) or None.

def finite(xs, ys):
    pts = [(x, y) for x, y in zip(xs, ys) if not math.isnan(y) and not math.isinf(y)]
    return [p[0] for p in pts], [p[1] for p in pts]


def figure(name, title, xlabel, ylabel, series, **kw):
    kept = []
    for label, xs, ys, style in series:
        xs, ys = finite(xs, ys)
        if xs:
            kept.append((label, xs, ys, style))
    ys = [y for s in kept for y in s[2]]
    # A log axis where every value is positive and they span 3x or more (over less, it
    # looks linear and holds no whole power of 10 to label).
    logy = kw.get("logy", True) and bool(ys) and min(ys) > 0 and max(ys) >= 3 * min(ys)
    yrange = kw.get("yrange")
    if logy and not yrange:   # within the data, not widened to whole decades
        pad = max(1.05, (max(ys) / min(ys)) ** 0.05)
        yrange = (min(ys) / pad, max(ys) * pad)
    return {"name": name, "title": title, "xlabel": xlabel, "ylabel": ylabel, "logy": logy,
            "series": kept, "vlines": kw.get("vlines", []), "xrange": kw.get("xrange"),
            "yrange": yrange}


def epoch_lines(run):
    """x of the boundaries between epochs (none past 40 epochs: they would hide the data)."""
    last = run["x"][-1]
    bounds = [e * run["per_epoch"] + 0.5 for e in range(1, last // run["per_epoch"] + 1)]
    bounds = [b for b in bounds if b < last]
    return bounds if len(bounds) <= 40 else []


def batch_axis(run):
    """The x axis of a per-batch figure: its range and the epochs' boundaries."""
    return {"vlines": epoch_lines(run), "xrange": (1, max(2, run["x"][-1]))}


def energy_figure(run, stem):
    b, x = run["batches"], run["x"]
    return figure("energy", f"{stem}: energy per batch", "batch (global index)", "energy",
                  [("before learning", x, [value(r, "pre_learn_energy") for r in b], "lines"),
                   ("after learning", x, [value(r, "energy") for r in b], "lines")],
                  **batch_axis(run))


def lr_figure(run, stem):
    b, x = run["batches"], run["x"]
    return figure("lr", f"{stem}: learning rate per batch", "batch (global index)",
                  "lr_learn", [("lr_learn", x, [value(r, "lr") for r in b], "lines")],
                  **batch_axis(run))


def seconds_figure(run, stem):
    b, x = run["batches"], run["x"]
    series = []
    for key, label in PHASES:
        ys = [value(r.get("rank0_seconds", {}), key) for r in b]
        if not any(y > 0 for y in ys):
            if key != "checkpoint":   # no checkpoint in most batches is no news
                note(f"seconds: phase {key} is zero or absent in every batch, not drawn")
            continue
        series.append((label, x, ys, "lines"))
    series.append(("batch wall clock", x, [value(r, "seconds") for r in b], "dashed"))
    return figure("seconds", f"{stem}: rank 0's seconds per phase, per batch",
                  "batch (global index)", "seconds", series, **batch_axis(run))


def accuracy_figure(run, stem, path):
    train = [(e["epoch"] + 1, 100 * value(e, "train_accuracy")) for e in run["epochs"]]
    train = [p for p in train if not math.isnan(p[1])]
    test = [(done, 100 * value(t, "accuracy")) for done, t in run["tests"]]
    test = [p for p in test if not math.isnan(p[1])]
    if not train and not test:
        note(f"{path}: no train or test accuracy: the accuracy plot is not written")
        return None
    if not test:
        note(f"{path}: no test accuracy (no test split, or the run stopped before its test): "
             "the accuracy plot shows train accuracy only")
    if not train:
        note(f"{path}: no train accuracy per epoch (--train-accuracy-every 0?): "
             "the accuracy plot shows test accuracy only")
    last = max(p[0] for p in train + test)
    series = [(f"{name} (last {pts[-1][1]:.2f} %)" if pts else name, [p[0] for p in pts],
               [p[1] for p in pts], "points") for name, pts in (("train", train), ("test", test))]
    return figure("accuracy", f"{stem}: accuracy per epoch", "epochs finished",
                  "accuracy (%)", series, logy=False, xrange=(0.5, last + 0.5),
                  yrange=(0, 100))


# ----------------------------------------------------------------------------------------
# Backends
# ----------------------------------------------------------------------------------------

def gnuplot_terminal():
    """pngcairo where gnuplot has it, else png; None without either."""
    for term in ("pngcairo", "png"):
        r = subprocess.run(["gnuplot", "-e", f"set terminal {term}"], capture_output=True)
        if r.returncode == 0:
            return term
    return None


def pick_backend(choice):
    """("matplotlib", pyplot) or ("gnuplot", terminal); exit 2 saying what to install."""
    if choice in ("auto", "matplotlib"):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            return "matplotlib", plt
        except ImportError:
            if choice == "matplotlib":
                die(2, "matplotlib does not import: install it (Debian: apt-get install "
                    "python3-matplotlib; else pip install matplotlib) or use --backend gnuplot")
    term = gnuplot_terminal() if shutil.which("gnuplot") else None
    if term:
        return "gnuplot", term
    if choice == "gnuplot":
        die(2, "gnuplot with a png terminal not found: install it (Debian: apt-get install "
            "gnuplot-nox)")
    die(2, "no plotting backend: install gnuplot (Debian: apt-get install gnuplot-nox) or "
        "matplotlib (Debian: python3-matplotlib)")


def quote(s):
    """A gnuplot single-quoted string."""
    return "'" + s.replace("'", "''") + "'"


def log_tics(lo, hi):
    """1, 2, 5 (else 1 to 9) times the powers of 10 within [lo, hi]: gnuplot labels only
    the whole powers on a log axis; None past 3 decades, where those are enough."""
    if hi > 1000 * lo:
        return None
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for mantissas in ((1, 2, 5), range(1, 10)):
        tics = [m * 10.0 ** k for k in decades for m in mantissas]
        tics = [t for t in tics if lo <= t <= hi]
        if len(tics) >= 3:
            return tics
    return None


def gnuplot_script(fig, out, term):
    size = "900,540" if term == "pngcairo" else "900,540 small"
    head = [f"set terminal {term} size {size} noenhanced", f"set output {quote(out)}",
            f"set title {quote(fig['title'])}", f"set xlabel {quote(fig['xlabel'])}",
            f"set ylabel {quote(fig['ylabel'])}", "set grid", "set key outside right top",
            "set format y '%g'",
            "set logscale y" if fig["logy"] else "unset logscale y"]
    if fig["xrange"]:
        head.append("set xrange [{}:{}]".format(*fig["xrange"]))
        if fig["xrange"][1] <= 21:
            head.append("set xtics 1")
    if fig["yrange"]:
        head.append("set yrange [{}:{}]".format(*fig["yrange"]))
        tics = fig["logy"] and log_tics(*fig["yrange"])
        if tics:
            head.append("set ytics (" + ", ".join(f"{t:g}" for t in tics) + ")")
    for i, x in enumerate(fig["vlines"]):
        head.append(f"set arrow from {x}, graph 0 to {x}, graph 1 nohead dt 2 lc rgb 'gray40'")
        if len(fig["vlines"]) <= 10:
            head.append(f"set label {quote(f'epoch {i + 2}')} at {x}, graph 0.97 left "
                        "offset 0.5,0 tc rgb 'gray40'")
    styles = {"lines": "with lines lw 2", "dashed": "with lines lw 1 dt 2 lc rgb 'gray30'",
              "points": "with linespoints lw 2 pt 7 ps 1.5"}
    data, plots = [], []
    for i, (label, xs, ys, style) in enumerate(fig["series"]):
        data += [f"$d{i} << EOD"] + [f"{x!r} {y!r}" for x, y in zip(xs, ys)] + ["EOD"]
        plots.append(f"$d{i} using 1:2 {styles[style]} title {quote(label)}")
    return "\n".join(data + head + ["plot " + ", ".join(plots)]) + "\n"


def draw_gnuplot(fig, out, term):
    r = subprocess.run(["gnuplot"], input=gnuplot_script(fig, out, term), text=True,
                       capture_output=True)
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        die(3, f"gnuplot failed on {out}: {lines[-1] if lines else 'exit %d' % r.returncode}")


def draw_matplotlib(fig, out, plt):
    from matplotlib.ticker import MaxNLocator   # matplotlib imports: pick_backend saw it
    f, ax = plt.subplots(figsize=(9, 5.4), dpi=100)
    styles = {"lines": {"lw": 1.5}, "dashed": {"lw": 1, "ls": "--", "color": "0.3"},
              "points": {"lw": 1.5, "marker": "o"}}
    for label, xs, ys, style in fig["series"]:
        ax.plot(xs, ys, label=label, **styles[style])
    for i, x in enumerate(fig["vlines"]):
        ax.axvline(x, ls="--", color="0.4", lw=0.8)
        if len(fig["vlines"]) <= 10:
            ax.text(x, 0.97, f" epoch {i + 2}", color="0.4", va="top",
                    transform=ax.get_xaxis_transform())
    if fig["logy"]:
        ax.set_yscale("log")
    if fig["xrange"]:
        ax.set_xlim(*fig["xrange"])
        if fig["xrange"][1] <= 21:   # whole batches or epochs
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if fig["yrange"]:
        ax.set_ylim(*fig["yrange"])
    ax.set_title(fig["title"])
    ax.set_xlabel(fig["xlabel"])
    ax.set_ylabel(fig["ylabel"])
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    f.tight_layout()
    f.savefig(out, format="png")
    plt.close(f)


# ----------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("metrics", metavar="METRICS.jsonl", help="a pcn_dist metrics file")
    p.add_argument("-o", "--outdir", help="folder for the PNG files (default: the metrics "
                   "file's folder); created if missing")
    p.add_argument("--backend", choices=["auto", "matplotlib", "gnuplot"], default="auto",
                   help="auto: matplotlib where it imports, else gnuplot (default auto)")
    return p.parse_args()


def main():
    args = parse_args()
    path = args.metrics
    run = collect(path, read_records(path))
    kind, tool = pick_backend(args.backend)
    note(run["summary"])
    outdir = args.outdir or os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        die(1, f"{outdir}: cannot create the output folder: {e.strerror}")
    stem = os.path.basename(path)
    stem = stem[:-len(".jsonl")] if stem.endswith(".jsonl") else os.path.splitext(stem)[0]
    figures = [energy_figure(run, stem), accuracy_figure(run, stem, path),
               lr_figure(run, stem), seconds_figure(run, stem)]
    for fig in figures:
        if fig is None:
            continue
        if not fig["series"]:
            note(f"{fig['name']}: no finite values to draw: {stem}-{fig['name']}.png not written")
            continue
        out = os.path.join(outdir, f"{stem}-{fig['name']}.png")
        (draw_gnuplot if kind == "gnuplot" else draw_matplotlib)(fig, out, tool)
        print(out)


if __name__ == "__main__":
    main()
