from __future__ import annotations

import zlib

import numpy as np
import pytest

from kerasnas.graph import Graph, generators, morphism, transfer
from kerasnas.testing import SHAPES

GENERATORS = sorted(generators.GENERATORS)
SEQUENCES_PER_GENERATOR = 39  # 13 per input shape
# The plain CNN is cheap, and on 8x8 images its one convolution takes a deeper morphism
# before any skip can join two tensors: it gets more sequences to reach every operation.
SEQUENCES_PER_CNN = 120


def random_child(graph, rng, length):
    child = graph
    for _ in range(length):
        child = morphism.random_morphism(child, rng)
    return child


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    # The quick run covers the plain CNN; the deeper generators' long chains are slow.
    "name",
    [n if n == "cnn" else pytest.param(n, marks=pytest.mark.slow) for n in GENERATORS],
)
def test_random_morphism_sequences_preserve_the_function(name, shape, trained_parents, logits):
    parent, parent_model, x = trained_parents(name, shape)
    before = parent.to_json()
    expected = logits(parent_model, x)
    # crc32, not hash(): Python salts str hashes per process, so each run drew other sequences.
    rng = np.random.default_rng(zlib.crc32(f"{name} {shape}".encode()))
    ops_seen = set()
    sequences = SEQUENCES_PER_CNN if name == "cnn" else SEQUENCES_PER_GENERATOR
    for _ in range(sequences // len(SHAPES)):
        child = random_child(parent, rng, int(rng.integers(1, 7)))
        ops_seen.update(r["op"] for r in child.history)
        text = child.to_json()
        assert Graph.from_json(text).to_json() == text
        model = transfer(parent, parent_model, child)
        assert model.count_params() == child.num_params()
        np.testing.assert_allclose(logits(model, x), expected, atol=1e-4, rtol=0)
    assert parent.to_json() == before  # morphisms never touch their input
    assert ops_seen == set(morphism.OPS)


@pytest.mark.parametrize("op", morphism.OPS)
@pytest.mark.parametrize("name", GENERATORS)
def test_each_operation_applies_and_preserves(op, name, trained_parents, logits):
    parent, parent_model, x = trained_parents(name, (28, 28, 1))
    child = getattr(morphism, op)(parent, np.random.default_rng(3))
    assert child.history == [dict(child.history[0], op=op)]
    model = transfer(parent, parent_model, child)
    np.testing.assert_allclose(logits(model, x), logits(parent_model, x), atol=1e-4, rtol=0)
    if op == "deeper":
        assert child.depth() == parent.depth() + 1
    elif op == "wider":
        assert child.num_params() > parent.num_params()
        assert child.depth() == parent.depth()
    else:
        kind = "add" if op == "add_skip" else "concat"
        count = lambda g: sum(layer["type"] == kind for layer in g.layers)
        assert count(child) == count(parent) + 1


def test_wider_follows_residual_adds():
    graph = generators.resnet((28, 28, 1), 10)
    transition = graph.layers[0]["name"]
    group = morphism.wider_group(graph, transition)
    # The stem conv feeds an add, so the block conv on the other branch widens too.
    assert len(group) == 2
    assert morphism.wider_group(graph, "head") is None


def test_no_place_to_apply_is_a_clear_error():
    g = Graph((8, 8, 1), 2)
    g.add_layer("head", g.add_layer("gap", g.add_layer("conv", g.input, filters=4, kernel_size=3)))
    with pytest.raises(morphism.MorphismError, match="`deeper` has no place"):
        morphism.deeper(g, np.random.default_rng(0))
    with pytest.raises(morphism.MorphismError, match="Unknown morphism 'taller'"):
        morphism.apply(g, {"op": "taller"})


def test_same_seed_same_child():
    g = generators.densenet((32, 32, 3), 10)
    a = random_child(g, np.random.default_rng(5), 6)
    b = random_child(g, np.random.default_rng(5), 6)
    assert a.to_json() == b.to_json()


def test_deeper_names_the_inserted_type_only_when_it_is_not_the_default():
    rng = np.random.default_rng(0)
    plain = generators.resnet((8, 8, 1), 3)
    assert all("type" not in morphism.deeper(plain, rng).history[-1] for _ in range(20))
    separable = generators.cnn((16, 16, 1), 3, separable=True)  # 8x8 has one conv only
    records = [morphism.deeper(separable, rng).history[-1] for _ in range(40)]
    assert {r.get("type") for r in records} == {None, "sepconv"}
    with pytest.raises(morphism.MorphismError, match="Cannot insert a head identity"):
        morphism.apply(
            plain, {"op": "deeper", "tensor": "relu_2", "kernel_size": 1, "type": "head"}
        )
