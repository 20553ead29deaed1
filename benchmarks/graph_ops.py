"""Times the graph operations the search repeats: morph, compile to Keras, transfer weights.

Usage: python benchmarks/graph_ops.py [--repeats 20]

Prints, for the ResNet-like initial graph on 28x28x1 inputs (30+ layers):
the time of one random morphism, of `Graph.to_keras()`, and of
`kerasnas.graph.transfer` for a child 1 and 5 morphisms away, as medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    import keras

    from kerasnas.graph import generators, keras_model, morphism, transfer, transfer_weights

    keras.utils.set_random_seed(0)
    parent = generators.resnet((28, 28, 1), 10)
    parent_model = parent.to_keras()
    weights = keras_model.get_weights(parent_model, parent)
    rng = np.random.default_rng(0)
    print(
        f"graph: {len(parent.layers)} layers, {parent.num_params():,} params, "
        f"{parent.flops() / 1e6:.1f} MFLOPs"
    )

    rows = [
        (
            "morph (one random operation)",
            median_seconds(lambda: morphism.random_morphism(parent, rng), args.repeats * 5),
        )
    ]
    rows.append(("compile (Graph.to_keras)", median_seconds(parent.to_keras, args.repeats)))
    for distance in (1, 5):
        child = parent
        for _ in range(distance):
            child = morphism.random_morphism(child, rng)
        rows.append(
            (
                f"transfer weights ({distance} morphism{'s' * (distance > 1)} away, incl. build)",
                median_seconds(lambda c=child: transfer(parent, parent_model, c), args.repeats),
            )
        )
        rows.append(
            (
                f"transfer weights ({distance} away, numpy only)",
                median_seconds(lambda c=child: transfer_weights(parent, weights, c), args.repeats),
            )
        )
    for label, seconds in rows:
        print(f"{label:<55} {seconds * 1000:8.2f} ms")


if __name__ == "__main__":
    main()
