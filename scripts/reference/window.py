#!/usr/bin/env python
"""Compare learning curves of mbrl and the Young et al. reference seed by seed.

Each input is a CSV of evaluations: mbrl's run-directory `metrics.csv` (rows
`cell,seed,step,metric,value`; the `eval` metric of one cell is used) or the
`seed,env_steps,reward_rate` file of scripts/reference/curves.py. Both count the
environment steps taken before an evaluation.

For every seed, the mean of its evaluations with LO <= steps <= HI (the window)
is one sample; the two sides are compared by Welch's t-test and the
Mann-Whitney U test (two-sided), both from scipy.

Usage: window.py --window LO HI [--cell N] NAME=FILE NAME=FILE
"""
import argparse
import csv
import math
import sys

from scipy import stats


def per_seed_means(path, lo, hi, cell):
    by_seed = {}
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        mbrl = "metric" in rows.fieldnames
        for row in rows:
            if mbrl:
                if row["metric"] != "eval" or int(row["cell"]) != cell:
                    continue
                steps, value = int(row["step"]), float(row["value"])
            else:
                steps, value = int(row["env_steps"]), float(row["reward_rate"])
            if lo <= steps <= hi:
                by_seed.setdefault(int(row["seed"]), []).append(value)
    if not by_seed:
        sys.exit(f"{path}: no evaluations between {lo} and {hi} steps")
    counts = {len(v) for v in by_seed.values()}
    if len(counts) != 1:
        sys.exit(f"{path}: seeds have different numbers of evaluations in the window: {sorted(counts)}")
    return [sum(v) / len(v) for _, v in sorted(by_seed.items())], counts.pop()


def summary(xs):
    n = len(xs)
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else float("nan")
    return mean, sd / math.sqrt(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window", nargs=2, type=int, required=True, metavar=("LO", "HI"))
    ap.add_argument("--cell", type=int, default=0, help="the cell of an mbrl metrics.csv (default 0)")
    ap.add_argument("sides", nargs=2, metavar="NAME=FILE")
    args = ap.parse_args()
    lo, hi = args.window
    sides = []
    for side in args.sides:
        name, path = side.split("=", 1)
        means, evals = per_seed_means(path, lo, hi, args.cell)
        sides.append((name, means))
        mean, se = summary(means)
        print(f"{name}: {len(means)} seeds x {evals} evaluations in [{lo}, {hi}] steps: "
              f"{mean:.2f} +- {se:.2f} (mean +- s.e.)")
        print("  per seed: " + ", ".join(f"{m:.2f}" for m in means))
    (a, xa), (b, xb) = sides
    t = stats.ttest_ind(xa, xb, equal_var=False)
    u = stats.mannwhitneyu(xa, xb, alternative="two-sided")
    diff = summary(xa)[0] - summary(xb)[0]
    se = math.hypot(summary(xa)[1], summary(xb)[1])
    print(f"{a} - {b}: {diff:+.2f} (pooled s.e. {se:.2f}); Welch t = {t.statistic:.2f}, "
          f"df = {t.df:.1f}, p = {t.pvalue:.3f}; Mann-Whitney U = {u.statistic:.0f}, p = {u.pvalue:.3f}")


if __name__ == "__main__":
    main()
