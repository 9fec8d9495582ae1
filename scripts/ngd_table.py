#!/usr/bin/env python3
"""Tables of natural-gradient and baseline runs from their run folders.

    ngd_table.py OUT.md TITLE LABEL=DIR ...

Writes a Markdown table: for every run its optimizer, steps, why it
stopped, its final relative L² error, its seconds, and the error each run
had reached by the wall-clock time of the first run (the error at equal
time: the last error evaluation at or before that many seconds).
"""
import csv
import json
import os
import sys


def load(d):
    rows = list(csv.DictReader(open(os.path.join(d, "train.csv"))))
    s = json.load(open(os.path.join(d, "summary.json")))
    c = json.load(open(os.path.join(d, "config.json")))
    errs = [(int(r["step"]), float(r["error_l2"]), float(r["seconds"])) for r in rows if r.get("error_l2")]
    return rows, s, c, errs


def at_time(errs, t):
    best = None
    for st, e, sec in errs:
        if sec <= t:
            best = (st, e)
    return best


def main():
    out, title = sys.argv[1], sys.argv[2]
    runs = [a.rsplit("=", 1) for a in sys.argv[3:]]
    loaded = [(lab, d) + load(d) for lab, d in runs]
    t0 = loaded[0][3]["seconds"]
    lines = [f"# {title}", "",
             f"Error at equal time: each run's relative L² error at the last error evaluation within "
             f"the first run's {t0:.0f} s.", "",
             "| run | optimizer | BLAS | steps | stop | relative L² (final) | seconds | at the first run's time |",
             "|---|---|---|---|---|---|---|---|"]
    for lab, d, rows, s, c, errs in loaded:
        at = at_time(errs, t0)
        at_s = f"{at[1]:.2e} (step {at[0]})" if at else "—"
        lines.append(f"| {lab} | {c['train']['optimizer']} | {s['blas']} | {s['steps']} | {s.get('stop_reason', '')} | "
                     f"{s['error_l2']:.2e} | {s['seconds']:.0f} | {at_s} |")
    open(out, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
