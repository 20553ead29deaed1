"""Weight transfer: a child graph starts with weights that compute what its parent did.

The child's history extends the parent's, so its weights are derived by
replaying the extra morphism records one at a time: layers a morphism
inserts get identity (or zero-output) weights, and the channels a `wider` or
`concat_skip` adds are traced as *channel maps* through the graph, each layer's
spec (`kerasnas.graph.layers`) rewriting its own weights for them. See the
glossary there.
"""

from __future__ import annotations

import numpy as np

from kerasnas.graph.graph import INPUT
from kerasnas.graph.layers import SPECS
from kerasnas.graph.morphism import MorphismError, apply, wider_group


def transfer_weights(parent_graph, parent_weights, child_graph):
    """Derives the child's weights from the parent's by replaying the morphisms.

    Args:
        parent_graph: the trained parent's `Graph`.
        parent_weights: `{layer name: [numpy arrays]}` as Keras orders them.
        child_graph: a `Graph` reached from the parent by morphisms (its
            `history` extends the parent's).

    Returns:
        `{layer name: [numpy arrays]}` for every layer of the child that has weights.

    Raises:
        MorphismError: if the child does not descend from the parent.
    """
    done = len(parent_graph.history)
    unrelated = MorphismError(
        "The child graph does not descend from the parent graph: replaying the child's "
        "morphism history on the parent does not give the child."
    )
    if child_graph.history[:done] != parent_graph.history:
        raise unrelated
    graph = parent_graph
    weights = {name: [np.asarray(w) for w in ws] for name, ws in parent_weights.items()}
    try:
        for record in child_graph.history[done:]:
            after = apply(graph, record)
            weights = _weights_after(graph, after, record, weights)
            graph = after
    except (KeyError, ValueError) as e:
        raise unrelated from e
    if graph.architecture_key() != child_graph.architecture_key():
        raise unrelated
    return weights


def transfer(parent_graph, parent_model, child_graph):
    """Builds the child as a `keras.Model` that carries the parent's trained weights.

    In inference mode the child's logits equal the parent's (to float
    rounding) on any input.

    Args:
        parent_graph: the parent's `Graph`.
        parent_model: the parent's trained `keras.Model` (from `parent_graph.to_keras()`).
        child_graph: a descendant of `parent_graph` (see `transfer_weights`).

    Returns:
        The child `keras.Model`, uncompiled.

    Raises:
        MorphismError: if the child does not descend from the parent.

    Example:
        ```python
        import numpy as np
        from kerasnas.graph import generators, morphism, transfer

        parent = generators.cnn((28, 28, 1), num_outputs=10)
        parent_model = parent.to_keras()  # then trained
        child = morphism.wider(parent, np.random.default_rng(0))
        child_model = transfer(parent, parent_model, child)
        x = np.random.default_rng(1).random((2, 28, 28, 1), dtype="float32")
        np.testing.assert_allclose(child_model(x), parent_model(x), atol=1e-5)
        ```
    """
    from kerasnas.graph import keras_model

    weights = transfer_weights(
        parent_graph, keras_model.get_weights(parent_model, parent_graph), child_graph
    )
    model = child_graph.to_keras()
    keras_model.set_weights(model, weights)
    return model


def _weights_after(before, after, record, weights):
    """Weights of `after` (one operation `record` away from `before`)."""
    weights = dict(weights)
    old_names = {layer["name"] for layer in before.layers}
    shapes = after.shapes()
    identity = record["op"] == "deeper"  # add_skip's new conv starts at zero instead
    for layer in after.layers:
        spec = SPECS[layer["type"]]
        if layer["name"] not in old_names and spec.weights:
            weights[layer["name"]] = spec.initial_weights(
                layer["config"], shapes[layer["inputs"][0]], shapes[layer["name"]], identity
            )
    seeds, widened = {}, {}
    if record["op"] == "wider":
        source = before.layer(record["layer"])
        width = source["config"][SPECS[source["type"]].width_key]
        g = np.concatenate([np.arange(width), np.asarray(record["extra"], dtype=int)])
        group = wider_group(before, record["layer"])
        widened = {name: (g, before.shape(name)[-1]) for name in group}
    elif record["op"] == "concat_skip":
        join = next(
            layer["name"]
            for layer in after.consumers(record["dst"])
            if layer["name"] not in old_names
        )
        c_dst, c_all = before.shape(record["dst"])[-1], shapes[join][-1]
        seeds[join] = (np.concatenate([np.arange(c_dst), -np.ones(c_all - c_dst, int)]), c_dst)
    else:
        return weights  # deeper and add_skip add identity / zero branches only
    _propagate_maps(after, weights, seeds, widened)
    return weights


def _propagate_maps(after, weights, seeds, widened):
    """Rewrites `weights` in place so `after` computes what its parent did.

    Args:
        seeds: `{tensor: (map, parent_channels)}` for new tensors with a known map.
        widened: `{layer name: (units, parent_units)}` of the layers whose output
            units were copied.
    """
    shapes = after.shapes()
    maps = {INPUT: None}  # tensor -> None or (map, parent channels)
    for layer in after.layers:
        name = layer["name"]
        if name in seeds:
            maps[name] = seeds[name]
            continue
        spec = SPECS[layer["type"]]
        ins = [maps[t] for t in layer["inputs"]]
        units = widened.get(name)
        if spec.weights and (ins[0] is not None or units is not None):
            in_map = None if ins[0] is None else ins[0][0]
            weights[name] = spec.carry_weights(
                weights[name], in_map, None if units is None else units[0]
            )
        if units is not None:
            maps[name] = units
        else:
            maps[name] = spec.channel_map(layer, ins, [shapes[t] for t in layer["inputs"]])
