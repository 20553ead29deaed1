"""The edit distance between two architectures (Jin, Song and Hu, Auto-Keras, KDD 2019).

    d(a, b) = D_l(L_a, L_b) + lambda * D_s(S_a, S_b)

Glossary:
    L       the conv and dense layers along the graph's longest path, in order.
    D_l     order-preserving alignment of L_a and L_b by dynamic programming:
            matching layers costs `layer_distance` (in [0, 1]), leaving one
            unmatched costs 1.
    S       the skip connections: one per extra input of an add or concat,
            described by (start, length, kind), where start is the number of
            layers of L before the branch leaves the main path and length the
            number of layers it jumps over.
    D_s     skip connections matched with `scipy.optimize.linear_sum_assignment`
            on `skip_distance` (in [0, 1]), plus 1 per unmatched skip.
    lambda  `SKIP_WEIGHT`, 1 as in the paper.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from kerasnas.graph.graph import INPUT, WEIGHTED

SKIP_WEIGHT = 1.0


class Architecture(NamedTuple):
    """What the edit distance sees of a graph."""

    layers: tuple  # ((kind, width, kernel_size), ...) along the longest path
    skips: tuple  # ((start, length, kind), ...)


def describe(graph):
    """Returns the `Architecture` (layers and skips) of a `Graph`."""
    rank, best_input = {INPUT: 0}, {}
    for layer in graph.layers:
        inputs = layer["inputs"]
        best = max(inputs, key=lambda t: rank[t])  # first of the longest on ties
        best_input[layer["name"]] = best
        rank[layer["name"]] = rank[best] + (layer["type"] in WEIGHTED)

    layers, tensor = [], graph.output
    while tensor != INPUT:
        layer = graph.layer(tensor)
        if layer["type"] in WEIGHTED:
            width = graph.shape(tensor)[-1]
            layers.append((layer["type"], width, layer["config"].get("kernel_size", 0)))
        tensor = best_input[tensor]
    layers.reverse()

    skips = []
    for layer in graph.layers:
        if layer["type"] not in ("add", "concat"):
            continue
        for branch in layer["inputs"]:
            if branch == best_input[layer["name"]]:
                continue
            # Walk back along the branch to where it forks off.
            while branch != INPUT and len(graph.consumers(branch)) == 1:
                inputs = graph.layer(branch)["inputs"]
                if len(inputs) != 1:
                    break
                branch = inputs[0]
            start = rank[branch]
            skips.append((start, rank[layer["name"]] - start, layer["type"]))
    return Architecture(tuple(layers), tuple(sorted(skips)))


def layer_distance(a, b):
    """Distance in [0, 1] between two layer descriptors `(kind, width, kernel_size)`."""
    if a[0] != b[0]:
        return 1.0
    d = abs(a[1] - b[1]) / max(a[1], b[1]) + (0.25 if a[2] != b[2] else 0.0)
    return min(1.0, d)


def skip_distance(a, b):
    """Distance in [0, 1] between two skips `(start, length, kind)`."""
    if a[2] != b[2]:
        return 1.0
    scale = max(a[0], b[0]) + max(a[1], b[1])
    return (abs(a[0] - b[0]) + abs(a[1] - b[1])) / scale if scale else 0.0


def _layers_distance(la, lb):
    n, m = len(la), len(lb)
    table = np.zeros((n + 1, m + 1))
    table[:, 0] = np.arange(n + 1)
    table[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            table[i, j] = min(
                table[i - 1, j] + 1,
                table[i, j - 1] + 1,
                table[i - 1, j - 1] + layer_distance(la[i - 1], lb[j - 1]),
            )
    return float(table[n, m])


def _skips_distance(sa, sb):
    if not sa or not sb:
        return float(len(sa) + len(sb))
    cost = np.array([[skip_distance(a, b) for b in sb] for a in sa])  # (|sa|, |sb|)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum()) + abs(len(sa) - len(sb))


def edit_distance(a, b):
    """The Auto-Keras edit distance between two architectures.

    Zero for equal architectures, symmetric, and growing as morphisms
    accumulate.

    Args:
        a: a `Graph` or its `describe()`d `Architecture`.
        b: a `Graph` or its `describe()`d `Architecture`.

    Returns:
        A non-negative float.
    """
    a = a if isinstance(a, Architecture) else describe(a)
    b = b if isinstance(b, Architecture) else describe(b)
    return _layers_distance(a.layers, b.layers) + SKIP_WEIGHT * _skips_distance(a.skips, b.skips)
