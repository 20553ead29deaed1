"""The MNIST demo the README's Quickstart runs: `python -m kerasnas.demo`."""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train a generated CNN on MNIST.")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)

    from kerasnas.datasets import load_mnist
    from kerasnas.graph import generators

    (x_train, y_train), (x_test, y_test) = load_mnist()
    x_train = x_train[..., None].astype("float32") / 255.0
    x_test = x_test[..., None].astype("float32") / 255.0
    graph = generators.cnn((28, 28, 1), 10)
    print(f"architecture: {graph.summary()} ({graph.num_params():,} params)")
    model = graph.to_keras()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.time()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=128, validation_split=0.1)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy: {accuracy:.4f} after {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
