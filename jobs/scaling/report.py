#!/usr/bin/env python3
"""Turns a scaling study's metrics files (OUT/MODE-pP.jsonl, written by pcn_dist --metrics)
into OUT/MODE.csv, OUT/MODE.md and, with gnuplot, OUT/MODE-speedup.png (speedup and
efficiency against P) and OUT/MODE-energy.png (per-batch energy trajectories, like Figure 3
of the paper). Standard library only.

    python3 jobs/scaling/report.py OUT MODE
"""
import csv
import glob
import json
import os
import re
import shutil
import subprocess
import sys


def load(path):
    batches, epochs, test = [], [], None
    with open(path) as f:
        for line in f:
            ev = json.loads(line)
            if ev["event"] == "batch":
                batches.append(ev)
            elif ev["event"] == "epoch":
                epochs.append(ev)
            elif ev["event"] == "test":
                test = ev
    return batches, epochs, test


def rows_of(out, mode):
    rows = []
    for path in glob.glob(os.path.join(out, f"{mode}-p*.jsonl")):
        p = int(re.search(r"-p(\d+)\.jsonl$", path).group(1))
        batches, epochs, test = load(path)
        if not batches or not epochs:
            continue
        if epochs[0].get("ranks", p) != p:  # the run must have had the ranks its name says
            sys.exit(f"{path}: the run had {epochs[0]['ranks']} ranks, its name says {p}")
        seconds = sum(e["seconds"] for e in epochs)
        samples = sum(b["samples"] for b in batches)
        comm = sum(e["seconds_max"]["collectives"] for e in epochs)
        # rank 0's collectives and bytes per batch (metrics written before they were counted
        # have none)
        calls = [b["collectives"] for b in batches if "collectives" in b]
        sent = [b["bytes_sent"] for b in batches if "bytes_sent" in b]
        rows.append({
            "collectives_per_batch": sum(calls) / len(calls) if calls else float("nan"),
            "bytes_per_batch": sum(sent) / len(sent) if sent else float("nan"),
            "oversubscribed": p > (os.cpu_count() or p),
            "mode": mode, "ranks": p, "global_batch": batches[0]["samples"],
            "batches": len(batches), "seconds_per_batch": seconds / len(batches),
            "samples_per_s": samples / seconds, "collectives_share": comm / seconds,
            "final_energy": epochs[-1]["energy"],
            "test_accuracy": test["accuracy"] if test else float("nan"),
            "energies": [b["energy"] for b in batches],
        })
    rows.sort(key=lambda r: r["ranks"])
    if not rows:
        sys.exit(f"no metrics files {mode}-p*.jsonl in {out}")
    base = rows[0]
    for r in rows:
        # strong: same work, so time ratio; weak/large: work grows with P, so throughput ratio
        if mode == "strong":
            r["speedup"] = base["seconds_per_batch"] / r["seconds_per_batch"]
        else:
            r["speedup"] = r["samples_per_s"] / base["samples_per_s"]
        r["efficiency"] = r["speedup"] / (r["ranks"] / base["ranks"])
    return rows


COLUMNS = ["mode", "ranks", "global_batch", "batches", "seconds_per_batch", "samples_per_s",
           "speedup", "efficiency", "collectives_share", "final_energy", "test_accuracy",
           "oversubscribed", "collectives_per_batch", "bytes_per_batch"]  # new columns last


def write_tables(out, mode, rows):
    with open(os.path.join(out, f"{mode}.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    heads = ["P", "global batch", "s / batch", "samples/s", "speedup", "efficiency",
             "collectives (time)", "collectives / batch", "bytes / batch (rank 0)",
             "final energy", "test accuracy"]
    lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    for r in rows:
        p = f"{r['ranks']} (oversubscribed)" if r["oversubscribed"] else f"{r['ranks']}"
        lines.append(f"| {p} | {r['global_batch']} | {r['seconds_per_batch']:.4f} | "
                     f"{r['samples_per_s']:.0f} | {r['speedup']:.2f} | {r['efficiency']:.2f} | "
                     f"{100 * r['collectives_share']:.1f} % | {r['collectives_per_batch']:.1f} | "
                     f"{r['bytes_per_batch']:.0f} | {r['final_energy']:.4f} | "
                     f"{100 * r['test_accuracy']:.2f} % |")
    if any(r["oversubscribed"] for r in rows):
        lines.append(f"\nOversubscribed: more ranks than the {os.cpu_count()} cores of the "
                     "machine the report ran on; their times measure sharing, not scaling.")
    with open(os.path.join(out, f"{mode}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(out, mode, rows):
    if not shutil.which("gnuplot"):
        print("gnuplot not found: no plots (Debian: gnuplot-nox)")
        return
    data = os.path.join(out, f"{mode}-speedup.dat")
    with open(data, "w") as f:
        for r in rows:
            f.write(f"{r['ranks']} {r['speedup']} {r['efficiency']}\n")
    energy = os.path.join(out, f"{mode}-energy.dat")
    with open(energy, "w") as f:
        for r in rows:
            f.write(f"# P = {r['ranks']}\n")
            for i, e in enumerate(r["energies"]):
                f.write(f"{i} {e}\n")
            f.write("\n\n")
    maxp = rows[-1]["ranks"]
    script = f"""
set terminal pngcairo size 800,500 noenhanced
set output '{out}/{mode}-speedup.png'
set title 'pcn_dist {mode} scaling'
set xlabel 'ranks P'; set ylabel 'speedup'; set y2label 'efficiency'
set y2tics; set ytics nomirror; set key left top; set grid
set xrange [0.5:{maxp + 0.5}]; set y2range [0:1.2]
plot '{data}' using 1:2 with linespoints lw 2 title 'speedup', \\
     x with lines dt 2 title 'ideal', \\
     '{data}' using 1:3 axes x1y2 with linespoints lw 2 title 'efficiency'
set output '{out}/{mode}-energy.png'
set title 'energy after learning, per batch ({mode})'
set xlabel 'batch'; set ylabel 'energy'; unset y2tics; unset y2label; set y2range [*:*]
set xrange [*:*]; set key right top
plot for [i=0:{len(rows) - 1}] '{energy}' index i using 1:2 with lines lw 2 title columnheader(1)
"""
    # columnheader needs a header line per block: write the titles in the data instead
    script = script.replace("title columnheader(1)", "title sprintf('P = %d', word('"
                            + " ".join(str(r["ranks"]) for r in rows) + "', i + 1) + 0)")
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print(f"plots: {out}/{mode}-speedup.png {out}/{mode}-energy.png")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out, mode = sys.argv[1], sys.argv[2]
    rows = rows_of(out, mode)
    write_tables(out, mode, rows)
    plot(out, mode, rows)


if __name__ == "__main__":
    main()
