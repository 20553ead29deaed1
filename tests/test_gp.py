from __future__ import annotations

import numpy as np
import pytest

from kerasnas.oracle.gp import (
    GaussianProcess,
    expected_improvement,
    gain_per_cost,
    upper_confidence_bound,
)


def points():
    x = np.array([0.0, 1.0, 2.0, 3.0, 6.0])
    return np.abs(x[:, None] - x[None, :]), np.sin(x)


def test_posterior_is_finite_and_shaped():
    distances, y = points()
    gp = GaussianProcess().fit(distances, y)
    cross = np.abs(np.array([[0.5], [10.0], [2.0]]) - np.array([[0.0, 1.0, 2.0, 3.0, 6.0]]))
    mu, sd = gp.predict(cross)
    assert mu.shape == sd.shape == (3,)
    assert np.all(np.isfinite(mu)) and np.all(sd > 0)
    # Certain near the data, uncertain far from it; interpolates an observation.
    assert sd[2] < sd[0] < sd[1]
    assert mu[2] == pytest.approx(np.sin(2.0), abs=0.05)
    assert all(scale in gp.lengthscales for scale in gp.lengthscale)
    assert gp.noise in gp.noises


def test_an_irrelevant_distance_is_switched_off():
    rng = np.random.default_rng(0)
    relevant, noise = rng.uniform(0, 5, 30), rng.uniform(0, 5, 30)
    distance = lambda v: np.abs(v[:, None] - v[None, :])
    gp = GaussianProcess().fit([distance(relevant), distance(noise)], np.sin(relevant))
    assert np.isfinite(gp.lengthscale[0]) and gp.lengthscale[1] == np.inf


def test_single_observation_and_constant_targets():
    gp = GaussianProcess().fit(np.zeros((1, 1)), np.array([0.7]))
    mu, sd = gp.predict(np.array([[0.0], [5.0]]))
    assert mu == pytest.approx([0.7, 0.7], abs=1e-6)
    assert np.all(np.isfinite(sd))


def test_non_positive_definite_distances_still_fit():
    # Edit distances need not give a valid kernel: jitter must rescue the Cholesky.
    distances = np.array([[0, 0, 5], [0, 0, 5], [5, 5, 0]], dtype=float)
    gp = GaussianProcess(noises=(0.0,)).fit(distances, np.array([1.0, 1.0, 0.0]))
    mu, _ = gp.predict(np.array([[0.0, 0.0, 5.0]]))
    assert np.isfinite(mu).all()


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="Expected distances of shape"):
        GaussianProcess().fit(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(RuntimeError, match="Call `fit`"):
        GaussianProcess().predict(np.zeros((1, 1)))


def test_acquisitions():
    assert upper_confidence_bound([1.0], [0.5], 2.0) == pytest.approx([2.0])
    # Same gain, twice the cost: half the value. Losses grow with cost instead.
    assert gain_per_cost([1.0, 1.0], [1.0, 2.0]) == pytest.approx([1.0, 0.5])
    assert gain_per_cost([-1.0, -1.0], [1.0, 2.0]) == pytest.approx([-1.0, -2.0])


def test_expected_improvement_matches_its_closed_form_and_a_monte_carlo_estimate():
    # At mu == best it is sd * phi(0) = sd / sqrt(2 pi).
    assert expected_improvement([1.0], [2.0], 1.0) == pytest.approx([2.0 / np.sqrt(2 * np.pi)])
    # With (almost) no uncertainty it is the plain improvement, never negative.
    assert expected_improvement([1.5, 0.5], [1e-15, 1e-15], 1.0) == pytest.approx([0.5, 0.0])
    rng = np.random.default_rng(0)
    mu, sd, best = np.array([0.2, -0.3, 1.0]), np.array([0.5, 1.0, 0.1]), 0.4
    samples = rng.normal(mu, sd, size=(200_000, 3))
    monte_carlo = np.maximum(samples - best, 0).mean(axis=0)
    np.testing.assert_allclose(expected_improvement(mu, sd, best), monte_carlo, atol=3e-3)
    # It grows with the mean and with the uncertainty.
    assert np.all(np.diff(expected_improvement([0.0, 0.1, 0.2], [0.3] * 3, 0.5)) > 0)
    assert np.all(np.diff(expected_improvement([0.0] * 3, [0.1, 0.2, 0.3], 0.5)) > 0)


def test_graph_and_gp_modules_import_no_tensorflow():
    """The IR and the search maths stay numpy/scipy only (a fresh interpreter checks)."""
    from kerasnas.testing import frameworks_imported_by

    modules = ["kerasnas.graph", "kerasnas.graph.distance", "kerasnas.graph.morphism"]
    modules += ["kerasnas.graph.generators", "kerasnas.oracle.gp", "kerasnas.oracle.annealing"]
    assert frameworks_imported_by(*modules) == []
