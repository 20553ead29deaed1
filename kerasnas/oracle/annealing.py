"""Tree-structured simulated annealing: the acquisition optimiser of Auto-Keras.

Starting from the trained architectures, it repeatedly expands the most
promising node of a search tree (its children are one morphism away), keeps
children that beat the best so far, or that lose by little while the
temperature is high, and cools down geometrically.

Glossary:
    T        temperature; starts at `t_init`, multiplied by `alpha` each step
    a        acquisition value (higher is better), in standardised units
    accept   a child enters the frontier if exp((a - a_best) / T) > u, u ~ U(0, 1)
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np


def anneal(starts, expand, acquire, rng, t_init=1.0, t_min=0.05, alpha=0.85):
    """Searches for the item with the highest acquisition value.

    Args:
        starts: `[(item, value)]`, the roots of the tree (already evaluated
            items, which are never returned themselves).
        expand: `expand(item, rng)` returns a list of new child items.
        acquire: `acquire(items)` returns their acquisition values, shape (m,).
        rng: a `numpy.random.Generator`.
        t_init: initial temperature. Defaults to 1.0.
        t_min: the search stops below this temperature. Defaults to 0.05.
        alpha: cooling factor per step. Defaults to 0.85.

    Returns:
        `(best item, its value)`, or `(None, -inf)` if no child was produced.
    """
    order = itertools.count()  # breaks ties so items are never compared
    frontier = [(-float(v), next(order), item) for item, v in starts]
    heapq.heapify(frontier)
    best, best_value = None, -np.inf
    temperature = t_init
    while temperature > t_min and frontier:
        _, _, item = heapq.heappop(frontier)
        children = expand(item, rng)
        if children:
            values = np.asarray(acquire(children), dtype=float)
            for child, value in zip(children, values):
                if value == -np.inf:
                    continue  # infeasible: neither returned nor expanded
                if value > best_value:
                    best, best_value = child, float(value)
                # Worse children still enter the frontier now and then while it is hot.
                threshold = np.exp(min(0.0, (value - best_value) / temperature))
                if threshold > rng.random():
                    heapq.heappush(frontier, (-float(value), next(order), child))
        temperature *= alpha
    return best, best_value
