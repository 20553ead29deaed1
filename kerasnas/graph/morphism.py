"""Function-preserving network morphisms: changes to a `Graph` that keep its function.

A morphism changes a `Graph` so that, with weights derived from the parent's,
the child computes exactly what the parent computed (in inference mode):

- `deeper`: inserts conv-bn-relu (or dense-relu) initialised as the identity
  after a tensor whose values are non-negative (so the relu changes nothing).
  Where the graph already has other layer types that can be an identity at
  that rank (a separable convolution), the inserted layer is drawn among them.
- `wider`: Net2Wider. A conv or dense layer gets extra units that copy random
  existing ones; the layers reading them divide the copied inputs by the
  number of copies. Widening passes through layers that keep channels one to
  one (batchnorm, relu, pooling, dropout, flatten) and through concatenation;
  where the widened tensor meets an `add`, every other branch of the add is
  widened the same way.
- `add_skip`: adds an earlier tensor into a later one through (max pooling
  and) a zero-initialised 1x1 convolution.
- `concat_skip`: concatenates an earlier (pooled) tensor onto a later one;
  the layers reading the later tensor get zero weights for the new channels.

Each operation is a record (a small JSON dict) appended to `graph.history`,
so a child several morphisms away from its parent can be rebuilt, and its
weights derived, by replaying the records: see `kerasnas.graph.transfer`.
Which layers an operation may widen, pass through or insert is asked of
their specs (`kerasnas.graph.layers`).
"""

from __future__ import annotations

from kerasnas.errors import MorphismError
from kerasnas.graph.graph import INPUT
from kerasnas.graph.layers import SPECS

OPS = ("deeper", "wider", "add_skip", "concat_skip")
MAX_DENSE_IDENTITY = 1024  # widest flat tensor `deeper` inserts a dense identity after
WIDEN_FRACTIONS = (0.25, 0.5, 1.0)
# What `deeper` inserts by default, by the rank of the tensor; followed by a
# batchnorm at rank 3. Other types with that `identity_rank` join the draw
# when the graph already uses them.
DEEPER_TYPES = {3: "conv", 1: "dense"}


# ---------------------------------------------------------------------- analysis


def _nonnegative(graph):
    """Maps each tensor to whether its values are always >= 0."""
    nonneg = {INPUT: False}
    for layer in graph.layers:
        spec = SPECS[layer["type"]]
        nonneg[layer["name"]] = spec.nonnegative([nonneg[t] for t in layer["inputs"]])
    return nonneg


def _extendable(graph, tensor):
    """True if channels appended to `tensor` only reach conv/dense inputs, never an `add`."""
    for consumer in graph.consumers(tensor):
        channels = SPECS[consumer["type"]].channels
        if channels == "sum":
            return False
        if channels in ("pass", "stack") and not _extendable(graph, consumer["name"]):
            return False
    return True


def wider_group(graph, layer_name):
    """Conv/dense layers that must widen together with `layer_name`.

    Layers whose outputs meet in an `add` carry the same channels, so widening one
    widens them all alike.

    Args:
        graph: the `Graph`.
        layer_name: the conv or dense layer to widen.

    Returns:
        A sorted list of layer names, or None if the layer cannot be widened
        (it is the head, or its output meets an add whose other branch
        cannot follow, e.g. the model input).
    """
    if SPECS[graph.layer(layer_name)["type"]].width_key is None:
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
        spec = SPECS[layer["type"]]
        if spec.width_key is not None:
            producers.add(tensor)
        elif spec.channels in ("pass", "sum"):
            if not all(join(t) for t in layer["inputs"]):
                return False
        else:  # the head, a concatenation: their channels cannot all be widened alike
            return False
        for consumer in graph.consumers(tensor):
            channels = SPECS[consumer["type"]].channels
            if channels in ("pass", "sum"):
                if not join(consumer["name"]):
                    return False
            elif channels == "stack" and not _extendable(graph, consumer["name"]):
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
            record = {"op": op, "tensor": tensor, "kernel_size": int(rng.choice([1, 3, 5]))}
            kinds = _deeper_types(graph, len(shapes[tensor]))
            if len(kinds) > 1:  # drawn only then, so graphs of the default types keep their draws
                kind = kinds[int(rng.integers(len(kinds)))]
                if kind != kinds[0]:
                    record["type"] = kind
            return record
    elif op == "wider":
        for i in rng.permutation(len(names)):
            layer = graph.layers[i]
            if SPECS[layer["type"]].width_key and wider_group(graph, layer["name"]):
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


def _deeper_types(graph, rank):
    """Layer types `deeper` may insert at a tensor of `rank`; the default first."""
    default = DEEPER_TYPES[rank]
    used = {layer["type"] for layer in graph.layers}
    others = sorted(t for t in used if t != default and SPECS[t].identity_rank == rank)
    return [default, *others]


def deeper(graph, rng):
    """Returns a copy of `graph` with an identity conv-bn-relu (or dense-relu) block inserted.

    Args:
        graph: the parent `Graph` (unchanged).
        rng: a `numpy.random.Generator` that picks the place, the kernel size and,
            where the graph has separable convolutions, the kind of convolution.

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

    Args:
        graph: the parent `Graph` (unchanged).
        rng: a `numpy.random.Generator`.
        ops: the operations to draw from, names of `OPS`. Defaults to all four.

    Returns:
        The child `Graph`.

    Raises:
        MorphismError: if none of `ops` applies to `graph`.

    Example:
        ```pycon
        >>> import numpy as np
        >>> from kerasnas.graph import generators, morphism
        >>> parent = generators.cnn((28, 28, 1), 10)
        >>> child = morphism.random_morphism(parent, np.random.default_rng(0))
        >>> len(child.history) - len(parent.history)
        1
        ```
    """
    for i in rng.permutation(len(ops)):
        try:
            return apply(graph, _choose(graph, ops[i], rng))
        except MorphismError:
            continue
    raise MorphismError(f"No morphism of {ops} applies to {graph.summary()}")


# ---------------------------------------------------------------------- graph edits


def apply(graph, record):
    """Returns a copy of `graph` with the operation `record` applied and logged.

    This is how a child is rebuilt from its parent: `transfer` replays the records
    of a child's `history` one at a time.

    Args:
        graph: the parent `Graph` (unchanged).
        record: a morphism record, as `deeper`, `wider`, `add_skip` and
            `concat_skip` append to `Graph.history` (a dict with `op`).

    Returns:
        The child `Graph`, `record` appended to its `history`.

    Raises:
        MorphismError: if `record` does not apply to `graph`.
    """
    child = graph.copy()
    op = record["op"]
    if op == "deeper":
        _apply_deeper(child, record)
    elif op == "wider":
        group = wider_group(child, record["layer"])
        if not group or not record["extra"]:
            raise MorphismError(f"Cannot widen layer {record['layer']!r}.")
        for name in group:
            layer = child.layer(name)
            layer["config"][SPECS[layer["type"]].width_key] += len(record["extra"])
    elif op in ("add_skip", "concat_skip"):
        _apply_skip(child, record)
    else:
        raise MorphismError(f"Unknown morphism {op!r}; expected one of {OPS}.")
    child.invalidate()
    child.shapes()
    child.history.append(dict(record))
    return child


def _apply_deeper(graph, record):
    tensor = record["tensor"]
    shape = graph.shape(tensor)
    kind = record.get("type", DEEPER_TYPES.get(len(shape)))
    spec = SPECS.get(kind)
    if spec is None or spec.identity_rank != len(shape):
        raise MorphismError(f"Cannot insert a {kind} identity after {tensor!r} of shape {shape}.")
    config = {spec.width_key: shape[-1]}
    if "kernel_size" in spec.config_keys:
        config["kernel_size"] = int(record["kernel_size"])
    first = {"name": graph.new_name(kind), "type": kind, "inputs": [tensor], "config": config}
    block = [first]
    if len(shape) == 3:
        block.append(_layer(graph, "batchnorm", first["name"]))
    block.append(_layer(graph, "relu", block[-1]["name"]))
    at = graph.index(tensor) + 1
    for i, layer in enumerate(block):
        graph.insert_layer(at + i, layer)
    graph.rewire(tensor, block[-1]["name"], skip={first["name"]})


def _layer(graph, kind, inputs, **config):
    """A new layer dict of type `kind` reading `inputs` (a name or a list of them)."""
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    return {"name": graph.new_name(kind), "type": kind, "inputs": inputs, "config": config}


def _apply_skip(graph, record):
    src, dst = record["src"], record["dst"]
    size = _skip_pool_size(graph.shape(src), graph.shape(dst))
    if size is None or not _ancestors(graph)(src, dst):
        raise MorphismError(f"Cannot join {src!r} into {dst!r}.")
    block, branch = [], src
    if size > 1:
        block.append(_layer(graph, "maxpool", src, pool_size=size))
        branch = block[-1]["name"]
    if record["op"] == "add_skip":  # through a zero 1x1 conv: adds nothing at first
        block.append(_layer(graph, "conv", branch, filters=graph.shape(dst)[-1], kernel_size=1))
        branch = block[-1]["name"]
    block.append(_layer(graph, "add" if record["op"] == "add_skip" else "concat", [dst, branch]))
    join = block[-1]["name"]
    at = graph.index(dst) + 1
    for i, layer in enumerate(block):
        graph.insert_layer(at + i, layer)
    graph.rewire(dst, join, skip={join})
