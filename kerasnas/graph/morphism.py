"""Function-preserving network morphisms and the weight transfer they allow.

A morphism changes a `Graph` so that, with weights derived from the parent's,
the child computes exactly what the parent computed (in inference mode):

- `deeper`: inserts conv-bn-relu (or dense-relu) initialised as the identity
  after a tensor whose values are non-negative (so the relu changes nothing).
- `wider`: Net2Wider. A conv or dense layer gets extra units that copy random
  existing ones; the layers reading them divide the copied inputs by the
  number of copies. Widening passes through batchnorm, relu, pooling,
  dropout, flatten and concatenation; where the widened tensor meets an
  `add`, every other branch of the add is widened the same way.
- `add_skip`: adds an earlier tensor into a later one through (max pooling
  and) a zero-initialised 1x1 convolution.
- `concat_skip`: concatenates an earlier (pooled) tensor onto a later one;
  the layers reading the later tensor get zero weights for the new channels.

Each operation is a record (a small JSON dict) appended to `graph.history`,
so a child several morphisms away from its parent can be rebuilt, and its
weights derived, by replaying the records: see `transfer`.

Glossary for the weight maps: a *channel map* `m` of a tensor is an int
array, one entry per channel of the child's tensor, giving the channel of the
parent's tensor it copies, or -1 for a new channel that starts at zero
influence. `None` means the identity.
"""

from __future__ import annotations

import numpy as np

from kerasnas.graph.graph import BN_EPSILON, CHANNELWISE, INPUT

OPS = ("deeper", "wider", "add_skip", "concat_skip")
MAX_DENSE_IDENTITY = 1024  # widest flat tensor `deeper` inserts a dense identity after
WIDEN_FRACTIONS = (0.25, 0.5, 1.0)


class MorphismError(ValueError):
    """Raised when an operation cannot be applied to a graph."""


# ---------------------------------------------------------------------- analysis


def _nonnegative(graph):
    """Maps each tensor to whether its values are always >= 0."""
    nonneg = {INPUT: False}
    for layer in graph.layers:
        kind = layer["type"]
        if kind == "relu":
            nonneg[layer["name"]] = True
        elif kind in ("maxpool", "avgpool", "gap", "flatten", "dropout", "add", "concat"):
            nonneg[layer["name"]] = all(nonneg[t] for t in layer["inputs"])
        else:
            nonneg[layer["name"]] = False
    return nonneg


def _extendable(graph, tensor):
    """True if channels appended to `tensor` only reach conv/dense inputs, never an `add`."""
    for consumer in graph.consumers(tensor):
        kind = consumer["type"]
        if kind == "add":
            return False
        if kind in CHANNELWISE + ("gap", "flatten", "concat"):
            if not _extendable(graph, consumer["name"]):
                return False
    return True


def wider_group(graph, layer_name):
    """Conv/dense layers that must widen together with `layer_name`.

    Returns:
        A sorted list of layer names, or None if the layer cannot be widened
        (it is the head, or its output meets an add whose other branch
        cannot follow, e.g. the model input).
    """
    if graph.layer(layer_name)["type"] not in ("conv", "dense"):
        return None
    producers, seen = set(), set()

    def join(tensor):
        # `tensor` must carry the same new channels as the widened layer.
        if tensor in seen:
            return True
        seen.add(tensor)
        if tensor == INPUT:
            return False
        layer = graph.layer(tensor)
        kind = layer["type"]
        if kind in ("conv", "dense"):
            producers.add(tensor)
        elif kind in CHANNELWISE + ("gap", "flatten", "add"):
            if not all(join(t) for t in layer["inputs"]):
                return False
        else:  # head, concat: their channels cannot all be widened alike
            return False
        for consumer in graph.consumers(tensor):
            kind = consumer["type"]
            if kind in CHANNELWISE + ("gap", "flatten", "add"):
                if not join(consumer["name"]):
                    return False
            elif kind == "concat" and not _extendable(graph, consumer["name"]):
                return False
        return True

    return sorted(producers) if join(layer_name) else None


def _ancestors(graph):
    """`is_ancestor(a, b)`: whether tensor `a` lies on a path into tensor `b`."""
    bit = {INPUT: 1}
    masks = {INPUT: 0}  # tensor -> bitmask of its ancestors
    for i, layer in enumerate(graph.layers):
        bit[layer["name"]] = 2 << i
        mask = 0
        for t in layer["inputs"]:
            mask |= masks[t] | bit[t]
        masks[layer["name"]] = mask
    return lambda a, b: bool(masks[b] & bit[a])


def _skip_pool_size(src_shape, dst_shape):
    """Pool size that takes `src_shape` to `dst_shape`'s resolution, or None."""
    if src_shape[0] < dst_shape[0] or src_shape[1] < dst_shape[1]:
        return None
    size = -(-src_shape[0] // dst_shape[0])
    if -(-src_shape[0] // size) == dst_shape[0] and -(-src_shape[1] // size) == dst_shape[1]:
        return size
    return None


# ---------------------------------------------------------------------- choosing


def _choose(graph, op, rng):
    """A random record of operation `op` that applies to `graph`.

    Places are tried in a random order and the first that works is taken, so
    large graphs need not enumerate every place (skips have O(layers^2)).

    Raises:
        MorphismError: if `op` applies nowhere.
    """
    if op not in OPS:
        raise MorphismError(f"Unknown morphism {op!r}; expected one of {OPS}.")
    shapes = graph.shapes()
    names = [layer["name"] for layer in graph.layers]
    nonneg = _nonnegative(graph)
    if op == "deeper":
        places = [
            t
            for t in names
            if nonneg[t] and (len(shapes[t]) == 3 or shapes[t][0] <= MAX_DENSE_IDENTITY)
        ]
        if places:
            tensor = places[int(rng.integers(len(places)))]
            return {"op": op, "tensor": tensor, "kernel_size": int(rng.choice([1, 3, 5]))}
    elif op == "wider":
        for i in rng.permutation(len(names)):
            layer = graph.layers[i]
            if layer["type"] in ("conv", "dense") and wider_group(graph, layer["name"]):
                width = shapes[layer["name"]][-1]
                extra = max(1, int(round(width * float(rng.choice(WIDEN_FRACTIONS)))))
                extra = [int(j) for j in rng.integers(0, width, size=extra)]
                return {"op": op, "layer": layer["name"], "extra": extra}
    else:
        done = {
            (r["src"], r["dst"]) for r in graph.history if r["op"] in ("add_skip", "concat_skip")
        }
        spatial = [t for t in names if len(shapes[t]) == 3 and nonneg[t]]
        is_ancestor = _ancestors(graph)
        for i in rng.permutation(len(spatial)):
            dst = spatial[i]
            if op == "concat_skip" and not _extendable(graph, dst):
                continue
            direct = graph.layer(dst)["inputs"]
            sources = [
                src
                for src in spatial
                if is_ancestor(src, dst)
                and src not in direct
                and (src, dst) not in done
                and _skip_pool_size(shapes[src], shapes[dst])
            ]
            if sources:
                return {"op": op, "src": sources[int(rng.integers(len(sources)))], "dst": dst}
    raise MorphismError(f"`{op}` has no place to apply in this graph: {graph.summary()}")


def deeper(graph, rng):
    """Returns a copy of `graph` with an identity conv-bn-relu (or dense-relu) block inserted.

    Args:
        graph: the parent `Graph` (unchanged).
        rng: a `numpy.random.Generator` that picks the place and kernel size.

    Returns:
        The child `Graph`.

    Raises:
        MorphismError: if no tensor allows it.
    """
    return apply(graph, _choose(graph, "deeper", rng))


def wider(graph, rng):
    """Returns a copy of `graph` with one conv or dense layer widened (Net2Wider).

    Args:
        graph: the parent `Graph` (unchanged).
        rng: a `numpy.random.Generator` that picks the layer, the new width and
            which units are copied.

    Returns:
        The child `Graph`.

    Raises:
        MorphismError: if no layer can be widened.
    """
    return apply(graph, _choose(graph, "wider", rng))


def add_skip(graph, rng):
    """Returns a copy of `graph` with an earlier tensor added into a later one.

    Args:
        graph: the parent `Graph` (unchanged).
        rng: a `numpy.random.Generator` that picks the two tensors.

    Returns:
        The child `Graph`.

    Raises:
        MorphismError: if no pair of tensors allows it.
    """
    return apply(graph, _choose(graph, "add_skip", rng))


def concat_skip(graph, rng):
    """Returns a copy of `graph` with an earlier tensor concatenated onto a later one.

    Args:
        graph: the parent `Graph` (unchanged).
        rng: a `numpy.random.Generator` that picks the two tensors.

    Returns:
        The child `Graph`.

    Raises:
        MorphismError: if no pair of tensors allows it.
    """
    return apply(graph, _choose(graph, "concat_skip", rng))


def random_morphism(graph, rng, ops=OPS):
    """Applies one operation, drawn uniformly from those of `ops` that apply anywhere.

    Returns:
        The child `Graph`.
    """
    for i in rng.permutation(len(ops)):
        try:
            return apply(graph, _choose(graph, ops[i], rng))
        except MorphismError:
            continue
    raise MorphismError(f"No morphism of {ops} applies to {graph.summary()}")


# ---------------------------------------------------------------------- graph edits


def apply(graph, record):
    """Returns a copy of `graph` with the operation `record` applied and logged."""
    child = graph.copy()
    op = record["op"]
    if op == "deeper":
        _apply_deeper(child, record)
    elif op == "wider":
        group = wider_group(child, record["layer"])
        if not group or not record["extra"]:
            raise MorphismError(f"Cannot widen layer {record['layer']!r}.")
        for name in group:
            config = child.layer(name)["config"]
            key = "filters" if "filters" in config else "units"
            config[key] += len(record["extra"])
    elif op in ("add_skip", "concat_skip"):
        _apply_skip(child, record)
    else:
        raise MorphismError(f"Unknown morphism {op!r}; expected one of {OPS}.")
    child._shapes = None
    child.shapes()
    child.history.append(dict(record))
    return child


def _apply_deeper(graph, record):
    tensor = record["tensor"]
    shape = graph.shape(tensor)
    at = graph.index(tensor) + 1
    if len(shape) == 3:
        k = int(record["kernel_size"])
        first = {
            "name": graph.new_name("conv"),
            "type": "conv",
            "inputs": [tensor],
            "config": {"filters": shape[-1], "kernel_size": k},
        }
        block = [
            first,
            {
                "name": graph.new_name("batchnorm"),
                "type": "batchnorm",
                "inputs": [first["name"]],
                "config": {},
            },
        ]
    else:
        first = {
            "name": graph.new_name("dense"),
            "type": "dense",
            "inputs": [tensor],
            "config": {"units": shape[0]},
        }
        block = [first]
    block.append(
        {
            "name": graph.new_name("relu"),
            "type": "relu",
            "inputs": [block[-1]["name"]],
            "config": {},
        }
    )
    for i, layer in enumerate(block):
        graph.insert_layer(at + i, layer)
    graph.rewire(tensor, block[-1]["name"], skip={first["name"]})


def _apply_skip(graph, record):
    src, dst = record["src"], record["dst"]
    size = _skip_pool_size(graph.shape(src), graph.shape(dst))
    if size is None or not _ancestors(graph)(src, dst):
        raise MorphismError(f"Cannot join {src!r} into {dst!r}.")
    block, branch = [], src
    if size > 1:
        branch = graph.new_name("maxpool")
        block.append(
            {"name": branch, "type": "maxpool", "inputs": [src], "config": {"pool_size": size}}
        )
    if record["op"] == "add_skip":
        conv = graph.new_name("conv")
        block.append(
            {
                "name": conv,
                "type": "conv",
                "inputs": [branch],
                "config": {"filters": graph.shape(dst)[-1], "kernel_size": 1},
            }
        )
        branch = conv
    join = graph.new_name("add" if record["op"] == "add_skip" else "concat")
    kind = "add" if record["op"] == "add_skip" else "concat"
    block.append({"name": join, "type": kind, "inputs": [dst, branch], "config": {}})
    at = graph.index(dst) + 1
    for i, layer in enumerate(block):
        graph.insert_layer(at + i, layer)
    graph.rewire(dst, join, skip={join})


# ---------------------------------------------------------------------- weights


def transfer_weights(parent_graph, parent_weights, child_graph):
    """Derives the child's weights from the parent's by replaying the morphisms.

    Args:
        parent_graph: the trained parent's `Graph`.
        parent_weights: `{layer name: [numpy arrays]}` as Keras orders them.
        child_graph: a `Graph` reached from the parent by morphisms (its
            `history` extends the parent's).

    Returns:
        `{layer name: [numpy arrays]}` for every weighted layer of the child.

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

    Example:

    >>> child = morphism.wider(parent, np.random.default_rng(0))
    >>> child_model = morphism.transfer(parent, parent_model, child)
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
    for layer in after.layers:
        if layer["name"] not in old_names:
            init = _new_layer_weights(after, layer, record["op"])
            if init is not None:
                weights[layer["name"]] = init
    seeds, widened = {}, {}
    if record["op"] == "wider":
        source = before.layer(record["layer"])
        width = source["config"]["filters" if source["type"] == "conv" else "units"]
        g = np.concatenate([np.arange(width), np.asarray(record["extra"], dtype=int)])
        widened = {name: g for name in wider_group(before, record["layer"])}
    elif record["op"] == "concat_skip":
        join = after.consumers(record["dst"])
        join = next(
            layer["name"]
            for layer in join
            if layer["type"] == "concat" and layer["name"] not in old_names
        )
        c_dst, c_all = before.shape(record["dst"])[-1], after.shape(join)[-1]
        seeds[join] = (np.concatenate([np.arange(c_dst), -np.ones(c_all - c_dst, int)]), c_dst)
    else:
        return weights  # deeper and add_skip add identity / zero branches only
    _propagate_maps(before, after, weights, seeds, widened)
    return weights


def _new_layer_weights(graph, layer, op):
    shape_in = graph.shape(layer["inputs"][0])
    channels = graph.shape(layer["name"])[-1]
    kind = layer["type"]
    if kind == "conv":
        k = layer["config"]["kernel_size"]
        kernel = np.zeros((k, k, shape_in[-1], channels), np.float32)
        if op == "deeper":  # identity; add_skip's 1x1 conv stays zero
            kernel[k // 2, k // 2] = np.eye(channels, dtype=np.float32)
        return [kernel, np.zeros(channels, np.float32)]
    if kind == "dense":
        return [np.eye(channels, dtype=np.float32), np.zeros(channels, np.float32)]
    if kind == "batchnorm":
        # gamma * (x - 0) / sqrt((1 - eps) + eps) + 0 == x
        return [
            np.ones(channels, np.float32),
            np.zeros(channels, np.float32),
            np.zeros(channels, np.float32),
            np.full(channels, 1.0 - BN_EPSILON, np.float32),
        ]
    return None


def _remap_inputs(kernel, m, axis):
    """Rows of `kernel` along `axis` for input map `m`: copies split by count, new ones 0."""
    m = np.asarray(m)
    counts = np.bincount(m[m >= 0], minlength=kernel.shape[axis]).astype(kernel.dtype)
    taken = np.take(kernel, np.maximum(m, 0), axis=axis)
    scale = np.where(m >= 0, 1.0 / np.maximum(counts[np.maximum(m, 0)], 1), 0.0)
    shape = [1] * kernel.ndim
    shape[axis] = len(m)
    return (taken * scale.reshape(shape)).astype(kernel.dtype)


def _propagate_maps(before, after, weights, seeds, widened):
    """Rewrites `weights` in place so `after` computes what `before` did.

    Args:
        seeds: `{tensor: (map, parent_channels)}` for new tensors with a known map.
        widened: `{layer name: map}` of the layers whose output units were copied.
    """
    maps = {INPUT: None}  # tensor -> None or (map, parent channels)
    for layer in after.layers:
        name, kind = layer["name"], layer["type"]
        ins = [maps[t] for t in layer["inputs"]]
        if name in seeds:
            maps[name] = seeds[name]
            continue
        if kind in ("conv", "dense", "head"):
            kernel, bias = weights[name]
            if ins[0] is not None:
                kernel = _remap_inputs(kernel, ins[0][0], axis=kernel.ndim - 2)
            maps[name] = None
            if name in widened:
                g = widened[name]
                maps[name] = (g, kernel.shape[-1])
                kernel, bias = kernel[..., g], bias[g]
            weights[name] = [kernel, bias]
        elif kind == "batchnorm":
            if ins[0] is not None:
                m = ins[0][0]
                defaults = (1.0, 0.0, 0.0, 1.0)
                weights[name] = [
                    np.where(m >= 0, w[np.maximum(m, 0)], d).astype(w.dtype)
                    for w, d in zip(weights[name], defaults)
                ]
            maps[name] = ins[0]
        elif kind == "flatten":
            maps[name] = None
            if ins[0] is not None:
                m, c_old = ins[0]
                h, w = after.shape(layer["inputs"][0])[:2]
                pos = np.arange(h * w)[:, None] * c_old
                flat = np.where(m[None, :] >= 0, pos + m[None, :], -1).reshape(-1)
                maps[name] = (flat, h * w * c_old)
        elif kind == "concat":
            maps[name] = None
            if any(i is not None for i in ins):
                parts, offset = [], 0
                for t, i in zip(layer["inputs"], ins):
                    m, c_old = (
                        i if i is not None else (np.arange(after.shape(t)[-1]), after.shape(t)[-1])
                    )
                    parts.append(np.where(m >= 0, m + offset, -1))
                    offset += c_old
                maps[name] = (np.concatenate(parts), offset)
        elif kind == "add":
            if any(not _same_map(i, ins[0]) for i in ins):
                raise MorphismError(f"Inputs of {name!r} carry different channel maps.")
            maps[name] = ins[0]
        else:  # relu, pooling, gap, dropout keep the channel order
            maps[name] = ins[0]


def _same_map(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a[1] == b[1] and np.array_equal(a[0], b[0])
