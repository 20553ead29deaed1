"""The edit distance between two architectures (Jin, Song and Hu, Auto-Keras, KDD 2019).

    d(a, b) = D_l(L_a, L_b) + lambda * D_s(S_a, S_b)

Glossary:
    L       the weighted layers (conv, dense, head, ...) along the graph's
            longest path, in order.
    D_l     order-preserving alignment of L_a and L_b by dynamic programming:
            matching two layers of one family costs |w_a - w_b| / max(w_a, w_b),
            plus 0.25 if their kernel sizes differ and 0.25 if their types do
            (a separable conv and a conv are both of the conv family), at most
            1 (w: filters or units); layers of different families, or one left
            unmatched, cost 1.
    S       the skip connections: one per extra input of an add or concat,
            described by (start, length, kind), where start is the number of
            layers of L before the branch leaves the main path and length the
            number of layers it jumps over.
    D_s     skip connections matched with `scipy.optimize.linear_sum_assignment`;
            matching two of one kind costs (|start_a - start_b| + |length_a -
            length_b|) / (max(start) + max(length)), of different kinds 1, and
            each one left unmatched 1.
    lambda  `SKIP_WEIGHT`, 1 as in the paper.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from kerasnas.graph.graph import INPUT
from kerasnas.graph.layers import SPECS

SKIP_WEIGHT = 1.0


class Architecture(NamedTuple):
    """What the edit distance sees of a graph."""

    layers: tuple  # ((type, width, kernel_size), ...) along the longest path
    skips: tuple  # ((start, length, kind), ...)


def describe(graph):
    """What the edit distance sees of a `Graph`: its layers and skips (see the glossary).

    Describing each graph once and passing the `Architecture`s to `edit_distances`
    saves describing it again for every pair.

    Args:
        graph: a `Graph` with a head.

    Returns:
        An `Architecture`.
    """
    rank, best_input = {INPUT: 0}, {}
    for layer in graph.layers:
        inputs = layer["inputs"]
        best = max(inputs, key=lambda t: rank[t])  # first of the longest on ties
        best_input[layer["name"]] = best
        rank[layer["name"]] = rank[best] + SPECS[layer["type"]].weighted

    layers, tensor = [], graph.output
    while tensor != INPUT:
        layer = graph.layer(tensor)
        if SPECS[layer["type"]].weighted:
            width = graph.shape(tensor)[-1]
            layers.append((layer["type"], width, layer["config"].get("kernel_size", 0)))
        tensor = best_input[tensor]
    layers.reverse()

    skips = []
    for layer in graph.layers:
        if not SPECS[layer["type"]].merges:
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


# Codes for the arrays below; only their equality matters.
_FAMILIES = {kind: list(SPECS).index(spec.family) for kind, spec in SPECS.items()}
# 0 for the type that names its family (conv, dense), another code for each variant (sepconv).
_VARIANTS = {kind: i * (kind != spec.family) for i, (kind, spec) in enumerate(SPECS.items())}
_MERGES = {kind: i for i, kind in enumerate(k for k, spec in SPECS.items() if spec.merges)}


def _layer_table(archs):
    """Pads `archs`' layers into arrays (family, width, kernel, variant), each (len(archs), N)."""
    longest = max(len(a.layers) for a in archs)
    table = np.full((4, len(archs), longest), -1.0)
    for i, arch in enumerate(archs):
        if arch.layers:
            kinds, widths, kernels = zip(*arch.layers)
            table[0, i, : len(kinds)] = [_FAMILIES[k] for k in kinds]
            table[1, i, : len(kinds)] = widths
            table[2, i, : len(kinds)] = kernels
            table[3, i, : len(kinds)] = [_VARIANTS[k] for k in kinds]
    return table


def _layers_distances(rows, cols):
    """D_l for every pair of `rows` x `cols` at once; returns shape (len(rows), len(cols))."""
    (ka, wa, ca, va), (kb, wb, cb, vb) = _layer_table(rows), _layer_table(cols)  # (R, N), (C, M)
    len_a = np.array([len(a.layers) for a in rows])  # (R,)
    len_b = np.array([len(b.layers) for b in cols])  # (C,)
    pair = (slice(None), None, slice(None), None)  # (R, N) -> (R, 1, N, 1)
    other = (None, slice(None), None, slice(None))  # (C, M) -> (1, C, 1, M)
    widths = np.abs(wa[pair] - wb[other]) / np.maximum(np.maximum(wa[pair], wb[other]), 1)
    differ = ca[pair] != cb[other]  # kernel sizes
    if (va > 0).any() or (vb > 0).any():  # skipped when no layer is a variant of its family
        differ = differ.astype(float) + (va[pair] != vb[other])
    substitute = np.minimum(1.0, widths + 0.25 * differ)
    substitute = np.where(ka[pair] == kb[other], substitute, 1.0)  # (R, C, N, M)
    steps = np.arange(kb.shape[1] + 1, dtype=float)  # (M + 1,)
    row = np.broadcast_to(steps, (len(rows), len(cols), len(steps)))  # D_l(a[:0], b[:j])
    result = np.zeros((len(rows), len(cols)))
    result[len_a == 0] = len_b
    for i in range(1, ka.shape[1] + 1):
        # Deletion or substitution first, then insertions as a running minimum along j.
        best = np.minimum(row[..., 1:] + 1, row[..., :-1] + substitute[:, :, i - 1])
        first = np.full((len(rows), len(cols), 1), float(i))
        best = np.concatenate([first, best], axis=2)
        row = np.minimum.accumulate(best - steps, axis=2) + steps
        done = len_a == i
        result[done] = row[done][:, np.arange(len(cols)), len_b]
    return result


@functools.lru_cache(maxsize=2**12)
def _skip_table(skips):
    """Skips as an array of columns (start, length, kind code), shape (3, len(skips))."""
    table = np.array([(s, n, _MERGES[kind]) for s, n, kind in skips], dtype=float)
    return table.reshape(-1, 3).T


def _skip_cost(a, b):
    """The cost of matching skip `a` with skip `b`, each (start, length, kind)."""
    (start_a, length_a, kind_a), (start_b, length_b, kind_b) = a, b
    if kind_a != kind_b:
        return 1.0
    scale = max(start_a, start_b) + max(length_a, length_b)
    return (abs(start_a - start_b) + abs(length_a - length_b)) / scale if scale > 0 else 0.0


# Up to this many skips a side, every matching is tried (at most 3! = 6), which is
# far quicker than building the cost matrix for `linear_sum_assignment`.
_FEW_SKIPS = 3


# Architectures of one search share few skip sets, and each pair costs an assignment.
@functools.lru_cache(maxsize=2**14)
def _skips_distance(skips_a, skips_b):
    """D_s between two `Architecture.skips`."""
    if not skips_a or not skips_b:
        return float(len(skips_a) + len(skips_b))
    if skips_a == skips_b:
        return 0.0
    fewer, more = sorted((skips_a, skips_b), key=len)
    unmatched = len(more) - len(fewer)
    if len(more) <= _FEW_SKIPS:
        return unmatched + min(
            sum(_skip_cost(a, more[j]) for a, j in zip(fewer, chosen))
            for chosen in itertools.permutations(range(len(more)), len(fewer))
        )
    a, b = _skip_table(fewer)[:, :, None], _skip_table(more)[:, None, :]  # (3, F, 1), (3, 1, M)
    scale = np.maximum(a[0], b[0]) + np.maximum(a[1], b[1])
    diff = np.abs(a[0] - b[0]) + np.abs(a[1] - b[1])
    cost = diff / np.maximum(scale, 1)  # a zero scale has a zero diff
    cost[a[2] != b[2]] = 1.0  # (F, M)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum()) + unmatched


def edit_distances(rows, cols):
    """Edit distances between every architecture of `rows` and every one of `cols`.

    Args:
        rows: a list of `Graph`s or `Architecture`s.
        cols: a list of `Graph`s or `Architecture`s.

    Returns:
        A float array of shape `(len(rows), len(cols))`.
    """
    rows = [r if isinstance(r, Architecture) else describe(r) for r in rows]
    cols = [c if isinstance(c, Architecture) else describe(c) for c in cols]
    if not rows or not cols:
        return np.zeros((len(rows), len(cols)))
    skips = np.array([[_skips_distance(r.skips, c.skips) for c in cols] for r in rows])
    return _layers_distances(rows, cols) + SKIP_WEIGHT * skips


def edit_distance(a, b):
    """The Auto-Keras edit distance between two architectures.

    Zero for equal architectures, symmetric, and growing as morphisms
    accumulate.

    Args:
        a: a `Graph` or its `describe()`d `Architecture`.
        b: a `Graph` or its `describe()`d `Architecture`.

    Returns:
        A non-negative float.

    Example:
        ```pycon
        >>> import numpy as np
        >>> from kerasnas.graph import edit_distance, generators, morphism
        >>> parent = generators.cnn((28, 28, 1), 10)
        >>> edit_distance(parent, parent)
        0.0
        >>> child = morphism.add_skip(parent, np.random.default_rng(0))
        >>> edit_distance(parent, child)
        1.0
        ```
    """
    return float(edit_distances([a], [b])[0, 0])
