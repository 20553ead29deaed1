"""The search's one epoch-cost model: seconds per epoch from FLOPs and activation size.

numpy and scipy only. FLOPs alone mispredict graphs of many thin layers and
concatenations (DenseNet-like ones), because an epoch also writes and reads
back every activation (measured: docs/design-notes.md). So the model is

    seconds = a * FLOPs + b * activations + c

with a, b, c >= 0, fitted to the measured epochs by non-negative least
squares on relative errors (a trial of 0.2 s per epoch weighs as much as
one of 20 s). Fewer observations fit fewer terms: one fits `a` alone
(seconds proportional to FLOPs), two fit `a` and `b`.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls


def features(graph):
    """`(FLOPs, activations)` of `graph`, the model's inputs."""
    return float(graph.flops()), float(graph.activations())


class EpochCost:
    """Seconds per epoch of an architecture, learned from measured ones.

    Example:
        ```pycon
        >>> cost = EpochCost().fit([(graph_a, 4.1), (graph_b, 9.3)])
        >>> cost.predict(graph_c)
        ```
    """

    def __init__(self):
        self.coefficients = None  # (a, b, c) after `fit`, or None without observations
        self._scale = None

    def fit(self, measured):
        """Fits the model.

        Args:
            measured: `(graph, seconds per epoch)` pairs; pairs with a
                non-positive or non-finite time are ignored.

        Returns:
            self.
        """
        rows = [(features(g), float(s)) for g, s in measured if np.isfinite(s) and s > 0]
        if not rows:
            self.coefficients = None
            return self
        x = np.array([f for f, _ in rows])  # (n, 2): FLOPs, activations
        seconds = np.array([s for _, s in rows])  # (n,)
        # Columns on comparable scales, so that NNLS's tolerance treats them alike.
        self._scale = np.maximum(x.mean(axis=0), 1.0)
        columns = np.column_stack([x / self._scale, np.ones(len(x))])  # (n, 3)
        distinct = len({tuple(r) for r in np.round(x / self._scale, 6)})
        used = [0] if distinct < 2 else [0, 1] if distinct < 3 else [0, 1, 2]
        weights, _ = nnls(columns[:, used] / seconds[:, None], np.ones(len(x)))
        coefficients = np.zeros(3)
        coefficients[used] = weights
        if not coefficients.any():  # degenerate: fall back to seconds per FLOP
            coefficients[0] = float(np.median(seconds / columns[:, 0]))
        self.coefficients = coefficients
        return self

    def predict(self, graphs):
        """Predicted seconds per epoch.

        Args:
            graphs: a `Graph`, or a list of them.

        Returns:
            A float (one graph) or an (m,) array, or None before any observation.
        """
        if self.coefficients is None:
            return None
        single = not isinstance(graphs, (list, tuple))
        x = np.array([features(g) for g in ([graphs] if single else graphs)])  # (m, 2)
        seconds = x / self._scale @ self.coefficients[:2] + self.coefficients[2]  # (m,)
        return float(seconds[0]) if single else seconds
