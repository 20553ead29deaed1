"""How much faster a child trains warm (kerasnas.graph.transfer) than from scratch, on MNIST.

Usage: python benchmarks/warm_start.py [--train 12000] [--parent-epochs 2]

Trains the initial CNN (the parent) on an MNIST subset, derives a child by two
morphisms, and trains the child (a) from the parent's weights through
`kerasnas.graph.transfer` and (b) from scratch, epoch by epoch, until each reaches
the parent's validation accuracy or 6 epochs. Prints the epochs and seconds
each needed and the validation accuracy after every epoch.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=12000)
    parser.add_argument("--parent-epochs", type=int, default=2)
    args = parser.parse_args()

    import keras

    from kerasnas.datasets import load_mnist
    from kerasnas.graph import generators, morphism, transfer

    keras.utils.set_random_seed(0)
    (x, y), (x_test, y_test) = load_mnist()
    x = (x[: args.train, ..., None] / 255.0).astype("float32")
    y = y[: args.train]
    x_val = (x_test[:2000, ..., None] / 255.0).astype("float32")
    y_val = y_test[:2000]

    def compile_(model):
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def accuracy(model):
        return model.evaluate(x_val, y_val, verbose=0)[1]

    parent = generators.cnn((28, 28, 1), 10)
    parent_model = compile_(parent.to_keras())
    parent_model.fit(x, y, batch_size=128, epochs=args.parent_epochs, verbose=0)
    target = accuracy(parent_model)
    rng = np.random.default_rng(0)
    child = morphism.wider(morphism.deeper(parent, rng), rng)
    print(
        f"parent: {parent.summary()} after {args.parent_epochs} epochs: val accuracy {target:.4f}"
    )
    print(f"child:  {child.summary()} ({child.num_params():,} params)")

    for label, model in (
        ("warm", transfer(parent, parent_model, child)),
        ("scratch", child.to_keras()),
    ):
        compile_(model)
        history, seconds, reached = [accuracy(model)], 0.0, None
        for epoch in range(1, 7):
            if history[-1] >= target and reached is None:
                reached = (epoch - 1, seconds)
            if reached is not None and epoch > 2:
                break
            start = time.time()
            model.fit(x, y, batch_size=128, epochs=1, verbose=0)
            seconds += time.time() - start
            history.append(accuracy(model))
        if reached is None and history[-1] >= target:
            reached = (len(history) - 1, seconds)
        where = (
            "not within 6 epochs"
            if reached is None
            else (f"{reached[0]} epochs, {reached[1]:.1f} s")
        )
        curve = " ".join(f"{a:.4f}" for a in history)
        print(
            f"{label:<8} reaches the parent's accuracy after {where}; "
            f"val accuracy by epoch (0 = start): {curve}"
        )


if __name__ == "__main__":
    main()
