"""Paired comparisons of two systems over seeds, and the two claims noise allows.

Not a benchmark itself: `budget.py` imports it to judge its rows. numpy and scipy only.

Glossary:
    d_i: the paired difference of seed i, 100 * (accuracy of A - accuracy of B), in
        points; the same seed gave A and B the same split, subset and training order.
    n: the pairs, the seeds both A and B ran (at one budget, dataset, machine and E).
    mean: the mean of d_i.
    se: the standard error of the mean, sd(d, ddof=1) / sqrt(n).
    t: the 0.975 quantile of Student's t with n - 1 degrees of freedom.
    low, high: the 95% interval, mean -/+ t * se.
    margin: how far behind (in points, negative) A may be and still count as not behind
        B, fixed before the runs (`MARGINS`).

The claims, as the research notes ask (several paired seeds, an interval, margins fixed
in advance):
- "not behind": the mean difference is above the margin. Decided on 3 pairs when the
  interval lies wholly above the margin ("not behind") or wholly below ("behind"); an
  interval that straddles the margin needs 6 pairs ("undecided (n pairs; run seeds up
  to 6)"), at which the mean decides.
- "ahead": at least 6 pairs and the interval's lower end above 0; otherwise "not shown".
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

# Points (x100 accuracy). MNIST and Fashion-MNIST: the margins the work states; about the
# binomial standard error of one score (0.077 points at 99.4% on 10,000 images, 0.26 at 93%).
# digits: 450 test images, one is 0.22 points; -0.5 allows a little over two images, about
# a third of one score's binomial error (1.4 points at 90%, 0.47 at 99%). fashion-colour
# (Fashion-MNIST's 10,000 test images, coloured): Fashion-MNIST's, fixed before its runs.
MARGINS = {"mnist": -0.15, "fashion": -0.3, "digits": -0.5, "fashion-colour": -0.3}
DECIDE_PAIRS = 3  # the fewest pairs "not behind" is decided on
EXTEND_PAIRS = 6  # where the interval straddles the margin; and the fewest for "ahead"


def paired(differences):
    """The mean paired difference, its standard error and 95% t-interval.

    Args:
        differences: d_i in points, one a pair.

    Returns:
        `{"n", "mean", "se", "low", "high"}`; with fewer than 2 pairs `se`, `low` and
        `high` are NaN (no spread to estimate).

    Example:

    >>> paired([0.1, 0.2, 0.3, 0.0, 0.1, 0.2])["mean"]
    0.15...
    """
    d = np.asarray(differences, dtype=float)  # (n,)
    n = int(d.size)
    if n == 0:
        return {"n": 0, "mean": math.nan, "se": math.nan, "low": math.nan, "high": math.nan}
    mean = float(d.mean())
    if n < 2:
        return {"n": n, "mean": mean, "se": math.nan, "low": math.nan, "high": math.nan}
    se = float(d.std(ddof=1) / math.sqrt(n))
    half = float(scipy_stats.t.ppf(0.975, n - 1)) * se
    return {"n": n, "mean": mean, "se": se, "low": mean - half, "high": mean + half}


def not_behind(summary, margin):
    """The verdict on "A is not behind B by more than `margin` points".

    Args:
        summary: what `paired` returns.
        margin: points, negative (`MARGINS`); None when none was fixed for the data.

    Returns:
        "not behind", "behind", "undecided (n pairs; run seeds up to 3)",
        "undecided (n pairs; run seeds up to 6)" or "no margin fixed".
    """
    n = summary["n"]
    if margin is None:
        return "no margin fixed"
    if n < DECIDE_PAIRS:
        return f"undecided ({n} pairs; run seeds up to {DECIDE_PAIRS})"
    if summary["low"] > margin:
        return "not behind"
    if summary["high"] < margin:
        return "behind"
    if n < EXTEND_PAIRS:
        return f"undecided ({n} pairs; run seeds up to {EXTEND_PAIRS})"
    return "not behind" if summary["mean"] > margin else "behind"


def ahead(summary):
    """The verdict on "A is ahead of B": "ahead" or "not shown" (with why, when too few)."""
    if summary["n"] < EXTEND_PAIRS:
        return f"not shown ({summary['n']} pairs; needs {EXTEND_PAIRS})"
    return "ahead" if summary["low"] > 0 else "not shown"


def compare(rows, name, order):
    """Every pair of systems at every budget, over the seeds both ran.

    Rows pair only when they share dataset, training subset, budget, machine (its
    hostname) and E: a budget in E means other seconds elsewhere, and another machine
    another noise.

    Args:
        rows: `budget.py`'s rows (failed ones are left out).
        name: the function giving a row's system label.
        order: the labels, first to last; a pair is (earlier) vs (later), `A - B`.

    Returns:
        `(comparisons, notes)`: one dict per pair (dataset, train_size, budget_E, host,
        E_seconds, a, b, seeds, the `paired` entries, margin and both verdicts), and
        lines saying which rows could not be paired.
    """
    groups, notes = {}, []
    for r in rows:
        if "error" in r or "test_accuracy" not in r:
            continue
        host = (r.get("machine") or {}).get("hostname")
        key = (r["dataset"], r.get("train_size"), r["budget_E"], host, r.get("E_seconds"))
        groups.setdefault(key, {}).setdefault(name(r), {})[r["seed"]] = r["test_accuracy"]
    apart = {}
    for key in groups:
        apart.setdefault(key[:3], []).append(key[3:])
    for (dataset, size, budget), machines in sorted(apart.items(), key=lambda kv: _sortable(kv[0])):
        if len(machines) > 1:
            machines = sorted(machines, key=lambda m: (str(m[0]), m[1] or 0))
            where = ", ".join(f"{h or 'unknown host'} (E = {e} s)" for h, e in machines)
            notes.append(
                f"{dataset}{_size(size)} {budget:g}E ran on {len(machines)} machines or E "
                f"values: {where}; rows are paired within each only."
            )
    comparisons = []
    for key in sorted(groups, key=_sortable):
        dataset, size, budget, host, e_seconds = key
        if host is None:
            notes.append(
                f"{dataset}{_size(size)} {budget:g}E: rows without a hostname (run before "
                "rows named their machine) are paired only with each other."
            )
        systems = groups[key]
        labels = sorted(systems, key=lambda s: (order.index(s) if s in order else len(order), s))
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                seeds = sorted(set(systems[a]) & set(systems[b]))
                d = [100 * (systems[a][s] - systems[b][s]) for s in seeds]
                summary = paired(d)
                margin = MARGINS.get(dataset)
                comparisons.append(
                    {"dataset": dataset, "train_size": size, "budget_E": budget,
                     "host": host, "E_seconds": e_seconds, "a": a, "b": b, "seeds": seeds,
                     **summary, "margin": margin,
                     "not_behind": not_behind(summary, margin), "ahead": ahead(summary)}
                )  # fmt: skip
    return comparisons, notes


def _size(size):
    return "" if size is None else f" (train {size})"


def _sortable(key):
    # (dataset, train_size, budget_E[, host, E]): None sorts first, hosts as text.
    dataset, size, budget, *rest = key
    return (dataset, size or 0, budget, *(str(x) if i == 0 else x or 0 for i, x in enumerate(rest)))
