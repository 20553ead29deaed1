"""Proposals: which morphism child of a trained architecture to train next.

A Gaussian process over the trained architectures (its kernel on four distances,
`kernel_distances`) predicts the score of a candidate; the acquisition (expected
improvement, or an upper confidence bound) made cost-aware by the budget schedule
scores it; `CandidateSearch` looks for the best candidate among random multi-morphism
jumps and by tree-structured simulated annealing. Numpy and scipy only.

Glossary:
    n: trained (or failed) trials the GP is fitted to; m: candidates scored at once.
    y: their objective values, maximised (a loss is negated).
    item: a candidate `(graph, parent trial id, morphisms from the parent)`.
"""

from __future__ import annotations

import numpy as np

from kerasnas.graph import morphism
from kerasnas.graph.distance import edit_distances
from kerasnas.oracle.annealing import anneal
from kerasnas.oracle.gp import (
    GaussianProcess,
    expected_improvement,
    gain_per_cost,
    upper_confidence_bound,
)

ACQUISITIONS = ("ei", "ucb")
# Lengthscales tried for each of the kernel's distances (inf switches one off), and
# noise variances: a coarse grid keeps a proposal fast with hundreds of trials.
KERNEL_LENGTHSCALES = (0.5, 2.0, 8.0, np.inf)
KERNEL_NOISES = (1e-3, 1e-2, 1e-1)
# The GP is fitted to at most this many trials (`window`): fitting costs n^3 for each of
# the grid's 765 kernels, the edit distances n^2, and each candidate n more.
MAX_OBSERVATIONS = 100


def window(ids, y, limit=MAX_OBSERVATIONS):
    """The observations the GP is fitted to: all of them up to `limit`; beyond, the best
    half by score and the most recent of the others (failed trials among them), so that
    a long search keeps its best architectures and its latest neighbourhood in view.

    Args:
        ids: n trial ids, oldest first.
        y: (n,) their maximised scores.
        limit: most observations. Defaults to `MAX_OBSERVATIONS`.

    Returns:
        `(ids, y)` of at most `limit` observations, in their original order.
    """
    y = np.asarray(y, float)
    if len(ids) <= limit:
        return list(ids), y
    best = set(np.argsort(-y, kind="stable")[: limit // 2].tolist())
    recent = [i for i in range(len(ids)) if i not in best][len(best) - limit :]
    keep = sorted(best.union(recent))
    return [ids[i] for i in keep], y[keep]


def graph_features(graphs):
    """(2, m) coordinates of m graphs for the kernel: log2 FLOPs and depth."""
    return np.array([[np.log2(max(g.flops(), 1)), g.depth()] for g in graphs], float).T


def kernel_distances(edit, features_a, features_b, efforts_a, efforts_b):
    """The kernel's four distances between two lists of trained (or planned) graphs.

    Args:
        edit: (m, n) edit distances between graphs a and b.
        features_a: (2, m) `graph_features` of graphs a.
        features_b: (2, n) the same for graphs b.
        efforts_a: (m,) epochs of training behind each of graphs a (see
            `kerasnas.oracle.measurements.effort`).
        efforts_b: (n,) the same for graphs b.

    Returns:
        (4, m, n): the edit distance, |log2 FLOPs_a - log2 FLOPs_b|,
        |depth_a - depth_b| and |log2(1 + effort_a) - log2(1 + effort_b)|.
    """
    (size_a, depth_a), (size_b, depth_b) = features_a, features_b  # (m,), (n,)
    effort_a = np.log2(1 + np.asarray(efforts_a, float))  # (m,)
    effort_b = np.log2(1 + np.asarray(efforts_b, float))  # (n,)
    return np.stack(
        [
            np.asarray(edit, float),
            np.abs(size_a[:, None] - size_b[None, :]),
            np.abs(depth_a[:, None] - depth_b[None, :]),
            np.abs(effort_a[:, None] - effort_b[None, :]),
        ]
    )


class EditDistances:
    """Edit distances between trials, each pair computed once over a search.

    Args:
        describe: a function from a trial id to its architecture's description
            (`kerasnas.graph.distance.describe`).
    """

    def __init__(self, describe):
        self.describe = describe
        self._pairs = {}  # (trial id, trial id) -> edit distance

    def matrix(self, ids):
        """(n, n) edit distances between the trials `ids`."""
        for i, a in enumerate(ids):
            missing = [b for b in ids[i + 1 :] if (a, b) not in self._pairs]
            if missing:
                found = edit_distances([self.describe(a)], [self.describe(b) for b in missing])
                for b, d in zip(missing, found[0]):
                    self._pairs[a, b] = self._pairs[b, a] = float(d)
        return np.array([[0.0 if a == b else self._pairs[a, b] for b in ids] for a in ids])


def fit_gp(distances, y):
    """A `GaussianProcess` fitted to (4, n, n) kernel distances and (n,) scores."""
    gp = GaussianProcess(lengthscales=KERNEL_LENGTHSCALES, noises=KERNEL_NOISES)
    gp.fit(distances, y)
    return gp


class CandidateSearch:
    """Finds the morphism child with the best acquisition value, for one proposal.

    Args:
        gp: the `GaussianProcess` fitted to the observed trials (None for `draw` alone).
        observed: the n observed `Graph`s, in the GP's order.
        described: their descriptions (for `edit_distances`), in the same order.
        efforts: (n,) the epochs behind each observed trial's weights.
        y: (n,) their maximised scores.
        schedule: the search's `BudgetSchedule` (a child's run, the cost weight).
        fits: a function telling whether a candidate `Graph` fits `max_model_size`.
        tried: architecture keys already trained or planned (never proposed again).
        acquisition: `"ei"` or `"ucb"`. Defaults to `"ei"`.
        beta: the exploration weight of UCB. Defaults to 2.576.
        max_morphisms: most morphisms between a candidate and its parent. Defaults to 5.
        pool_size: random multi-morphism candidates scored beside the annealing's.
            Defaults to 32.
        cost: the fitted `EpochCost`, or None.
        typical_epoch: the median measured epoch, or None.
        remaining: seconds to the deadline, or None without one.
        budget: the search's budget, or None.
        overhead: a child's overhead in seconds. Defaults to 0.
        usual_epochs: epochs a child trains without a deadline. Defaults to 1.
    """

    def __init__(
        self,
        gp,
        observed,
        described,
        efforts,
        y,
        *,
        schedule,
        fits,
        tried=(),
        acquisition="ei",
        beta=2.576,
        max_morphisms=5,
        pool_size=32,
        cost=None,
        typical_epoch=None,
        remaining=None,
        budget=None,
        overhead=0.0,
        usual_epochs=1.0,
    ):
        self.gp = gp
        self.observed, self.described = graph_features(observed), described  # (2, n), n
        self.efforts = np.asarray(efforts, float)  # (n,)
        self.best, self.y_scale = float(np.max(y)), float(np.std(y) or 1.0)
        self.schedule, self.fits = schedule, fits
        self.seen = set(tried)
        self.acquisition, self.beta = acquisition, beta
        self.max_morphisms, self.pool_size = max_morphisms, pool_size
        self.cost, self.typical_epoch = cost, typical_epoch
        self.remaining, self.budget, self.overhead = remaining, budget, overhead
        self.usual_epochs = usual_epochs
        self.parent_effort = {}

    def propose(self, parents, rng):
        """The best candidate grown from `parents`, or None when none is worth training.

        Args:
            parents: `(trial id, Graph, effort, maximised score)` of each trained trial.
            rng: a numpy `Generator`.

        Returns:
            `(Graph, parent trial id)`, or None.
        """
        self.parent_effort = {trial_id: e for trial_id, _, e, _ in parents}
        starts = [((g, i, 0), (score - self.best) / self.y_scale) for i, g, _, score in parents]
        candidates = []
        pool = self.pool(starts, rng)
        if pool:
            values = self.acquire(pool)
            candidates.append((pool[int(np.argmax(values))], float(np.max(values))))
        candidates.append(anneal(starts, self.expand, self.acquire, rng))
        proposal, value = max(candidates, key=lambda c: c[1])
        return None if proposal is None or not np.isfinite(value) else proposal[:2]

    def draw(self, parents, rng):
        """A candidate drawn uniformly from a pool like the one `propose` scores: the
        random-search ablation. No Gaussian process is asked; under a deadline, only a
        candidate that can finish an epoch in the time left is drawn.

        Args:
            parents: `(trial id, Graph, effort, maximised score)` of each trained trial.
            rng: a numpy `Generator`.

        Returns:
            `(Graph, parent trial id)`, or None when no candidate fits.
        """
        pool = self.pool([((g, i, 0), 0.0) for i, g, _, _ in parents], rng)
        seconds = None if self.cost is None or not pool else self.cost.predict(
            [g for g, _, _ in pool]
        )  # fmt: skip
        if self.remaining is not None and seconds is not None:
            pool = [item for item, s in zip(pool, seconds) if s < self.remaining]
        return pool[int(rng.integers(len(pool)))][:2] if pool else None

    def pool(self, starts, rng):
        """Random jumps of 1 to `max_morphisms` morphisms from random trained parents."""
        found = []
        for _ in range(self.pool_size):
            item = starts[int(rng.integers(len(starts)))][0]
            for _ in range(int(rng.integers(1, self.max_morphisms + 1))):
                children = self.expand(item, rng)
                if not children:
                    break
                item = children[int(rng.integers(len(children)))]
            if item[2]:
                found.append(item)
        return found

    def expand(self, item, rng):
        """The unseen children of a candidate, one morphism further, that fit."""
        graph, parent_id, steps = item
        if steps >= self.max_morphisms:
            return []
        children = []
        for op in morphism.OPS:
            try:
                child = getattr(morphism, op)(graph, rng)
            except morphism.MorphismError:
                continue
            key = child.architecture_key()
            if key not in self.seen and self.fits(child):
                self.seen.add(key)
                children.append((child, parent_id, steps + 1))
        return children

    def acquire(self, items):
        """(m,) acquisition values of candidate items: gain, per second under a deadline;
        -inf for a candidate that cannot finish an epoch in the time left."""
        graphs = [g for g, _, _ in items]
        seconds = None if self.cost is None else self.cost.predict(graphs)  # (m,) or None
        if self.remaining is None or seconds is None:
            epochs = np.full(len(graphs), self.usual_epochs)
        else:
            run = self.schedule.child_seconds(self.remaining, seconds, self.overhead, self.budget)
            epochs = np.maximum(run - self.overhead, 0.0) / np.maximum(seconds, 1e-9)
        efforts = np.array([self.parent_effort[p] for _, p, _ in items]) + epochs  # (m,)
        edit = edit_distances(graphs, self.described)
        cross = kernel_distances(edit, graph_features(graphs), self.observed, efforts, self.efforts)
        mu, sd = self.gp.predict(cross)  # (4, m, n) -> (m,), (m,)
        if self.acquisition == "ei":
            gain = expected_improvement(mu, sd, self.best) / self.y_scale  # (m,)
        else:
            gain = (upper_confidence_bound(mu, sd, self.beta) - self.best) / self.y_scale
        if self.remaining is None or seconds is None or self.typical_epoch is None:
            return gain
        weight = self.schedule.cost_weight(self.typical_epoch, self.remaining)
        value = gain_per_cost(gain, (seconds / self.typical_epoch) ** weight)
        return np.where(seconds < self.remaining, value, -np.inf)
