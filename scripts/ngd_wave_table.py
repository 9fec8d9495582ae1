#!/usr/bin/env python3
"""The wave's natural-gradient runs: how far and how fast, and where a step's time goes.

    ngd_wave_table.py OUT.md TITLE LABEL=DIR[:LOG] ...

For every run (its folder, and the debug log of its coordinator when
given): the relative L² and maximum errors at the error evaluations
against step and seconds (a few rows), the best error, and — from the
log's "optimizer step" lines — the median seconds of a step's parts: the
exact K (kernel_seconds), the solve with its backward pass
(solve_seconds), the line search (search_seconds), and the evaluations
of Φ per step.
"""
import csv
import os
import re
import statistics
import sys


def parts(log):
    rows = []
    for line in open(log, errors="replace"):
        if "optimizer step" not in line:
            continue
        d = dict(re.findall(r"(\w+)=(\S+)", line))
        try:
            rows.append({k: float(d[k]) for k in ("kernel_seconds", "solve_seconds", "search_seconds", "line_search_evals", "eta", "mu")})
        except KeyError:
            pass
    return rows


def main():
    out, title = sys.argv[1], sys.argv[2]
    lines = [f"# {title}", ""]
    for arg in sys.argv[3:]:
        lab, rest = arg.rsplit("=", 1)
        d, _, log = rest.partition(":")
        rows = list(csv.DictReader(open(os.path.join(d, "train.csv"))))
        errs = [(int(r["step"]), float(r["error_l2"]), float(r["error_max"]), float(r["seconds"])) for r in rows if r.get("error_l2")]
        lines += [f"## {lab}", "", f"{len(rows)} steps in {float(rows[-1]['seconds']):.0f} s; "
                  f"best relative L² {min(e[1] for e in errs):.2e}, best max error {min(e[2] for e in errs):.2e}.", "",
                  "| step | seconds | relative L² | max error |", "|---|---|---|---|"]
        marks = sorted(set([0] + [len(errs) * k // 12 for k in range(1, 12)] + [len(errs) - 1]))
        for k in marks:
            st, l2, mx, sec = errs[k]
            lines.append(f"| {st} | {sec:.0f} | {l2:.3e} | {mx:.3e} |")
        if log and os.path.exists(log):
            p = parts(log)
            if p:
                med = {k: statistics.median(r[k] for r in p) for k in p[0]}
                tot = med["kernel_seconds"] + med["solve_seconds"] + med["search_seconds"]
                lines += ["", f"Median over {len(p)} steps: exact K {med['kernel_seconds']:.2f} s, solve and its passes "
                          f"{med['solve_seconds']:.2f} s, line search {med['search_seconds']:.2f} s "
                          f"({med['line_search_evals']:.0f} evaluations of Φ), {tot:.2f} s in all; "
                          f"η median {med['eta']:.3g}, μ median {med['mu']:.3g}."]
        lines.append("")
    open(out, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
