"""Draws the documentation's pictures from a real, small kerasnas search.

The pictures in `docs/images/` come from one run of this script: a search of 150 seconds
(`seed=1`) on the first 2,000 MNIST training images, loaded with
`kerasnas.datasets.load_mnist()` (which works offline once MNIST is cached). The run
behind the committed pictures, on a 2-core CPU without a GPU: 6 trials in 148 s (two
initial architectures, three morphism children, one refinement), best validation accuracy
0.9950 (trial 5, the refinement of a ResNet-like architecture with 486,282 parameters),
accuracy 0.9782 on the 10,000 MNIST test images. To draw them again, run from the
repository's root (the search trains: about four minutes on 2 CPU cores; Graphviz's
`dot` must be installed):

```bash
python docs/make_pictures.py
```

It writes

- `docs/images/search.png`: `kerasnas.plot_search(directory)`, every trial's validation
  accuracy against the training time spent so far, lines from parent to child, the best
  so far as a step line;
- `docs/images/best-architecture.png`: the best trial's architecture, drawn by
  `kerasnas.visualize`;
- `docs/images/morphism-tree.png`: the morphism tree, one box per trial (its score and
  size), an arrow from each parent to the child that started from its weights, labelled
  with the morphisms between them (`refine` for a trial that trains its parent on); the
  best trial is filled.

and prints the run's figures (trials, best score, seconds, test accuracy) to put beside
them. The run itself goes to a temporary folder, or to `--directory` to keep it. The
numbers differ a little from one machine to another: the time limit decides how many
trials fit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"
TRAIN_IMAGES = 2000
TIME_LIMIT = 150  # seconds of search
SEED = 1
MAX_BYTES = 300_000  # each picture stays under this, so the repository stays small


def search(directory):
    """Runs the search; returns the fitted classifier, the fit's seconds and the data."""
    import keras

    import kerasnas

    keras.utils.set_random_seed(SEED)
    (x_train, y_train), (x_test, y_test) = kerasnas.datasets.load_mnist()
    x_train, y_train = x_train[:TRAIN_IMAGES], y_train[:TRAIN_IMAGES]
    clf = kerasnas.ImageClassifier(directory=directory, seed=SEED, overwrite=True)
    start = time.time()
    clf.fit(x_train, y_train, time_limit=TIME_LIMIT)
    return clf, time.time() - start, (x_test, y_test)


def new_morphisms(child, parent):
    """The morphism records of `child` that `parent` does not have (names only)."""
    if child.history[: len(parent.history)] != parent.history:
        return ["?"]
    return [record["op"] for record in child.history[len(parent.history) :]]


def edge_label(ops):
    """`["wider", "wider", "deeper"]` -> `"wider x2\\ndeeper"`, in order of first use."""
    counts = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    return "\\n".join(op if n == 1 else f"{op} x{n}" for op, n in counts.items())


def morphism_tree(directory, best_trial_id, path):
    """Draws the morphism tree of the run in `directory` to `path` (PNG) with Graphviz."""
    import pydot

    from kerasnas import trials as contract
    from kerasnas.diagrams import load_trials

    found = {t.trial_id: t for t in load_trials(directory)}
    dot = pydot.Dot(graph_type="digraph", rankdir="TB", dpi=110, nodesep=0.15, ranksep=0.35)
    dot.set_node_defaults(shape="box", style="rounded", fontname="Helvetica", fontsize=10)
    dot.set_edge_defaults(fontname="Helvetica", fontsize=9, color="gray40")
    for trial_id, trial in found.items():
        name = trial_id.lstrip("0") or "0"
        if trial.status == "COMPLETED" and trial.score is not None:
            size = contract.graph_of(trial).num_params() if contract.has_architecture(trial) else 0
            label = f"trial {name}\\n{trial.score:.4f}\\n{size / 1e3:,.0f}k params"
        else:
            label = f"trial {name}\\n{trial.status.lower()}"
        attrs = {"label": label}
        if trial_id == best_trial_id:
            attrs.update(style="rounded,filled", fillcolor="#ffd58a", penwidth=2)
        elif trial.status != "COMPLETED":
            attrs.update(style="rounded,dashed", fontcolor="gray40")
        dot.add_node(pydot.Node(f"t{trial_id}", **attrs))
    for trial_id, trial in found.items():
        parent = contract.parent_of(trial)
        if not parent or parent not in found:
            continue
        if contract.is_refinement(trial):
            label = "refine"
        elif contract.has_architecture(trial) and contract.has_architecture(found[parent]):
            label = edge_label(
                new_morphisms(contract.graph_of(trial), contract.graph_of(found[parent]))
            )
        else:
            label = ""
        dot.add_edge(pydot.Edge(f"t{parent}", f"t{trial_id}", label=label))
    dot.write(str(path), format="png")


def small_png(path):
    """Keeps a PNG under `MAX_BYTES`: fewer colours first, then fewer pixels."""
    from PIL import Image

    if os.path.getsize(path) <= MAX_BYTES:
        return
    image = Image.open(path).convert("RGB")
    image.quantize(colors=64).save(path, optimize=True)
    while os.path.getsize(path) > MAX_BYTES:
        image = image.resize((image.width * 4 // 5, image.height * 4 // 5), Image.LANCZOS)
        image.quantize(colors=64).save(path, optimize=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", help="keep the run here (default: a temporary folder)")
    args = parser.parse_args(argv)

    import kerasnas
    from kerasnas import trials as contract
    from kerasnas.diagrams import load_trials

    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.directory or os.path.join(scratch, "run")
        clf, seconds, (x_test, y_test) = search(directory)
        accuracy = clf.evaluate(x_test, y_test)

        fig = kerasnas.plot_search(directory)
        fig.savefig(IMAGES / "search.png", dpi=100)

        diagrams = os.path.join(scratch, "diagrams")
        kerasnas.visualize(directory, diagrams)
        best = clf.best_trial_id_
        shutil.copyfile(
            os.path.join(diagrams, f"trial_{best}.png"), IMAGES / "best-architecture.png"
        )

        morphism_tree(directory, best, IMAGES / "morphism-tree.png")
        for name in ("search.png", "best-architecture.png", "morphism-tree.png"):
            small_png(IMAGES / name)

        found = load_trials(directory)
        completed = [t for t in found if t.status == "COMPLETED"]
        children = [t for t in completed if contract.parent_of(t) and not contract.is_refinement(t)]
        refined = [t for t in completed if contract.is_refinement(t)]
        best_trial = next(t for t in found if t.trial_id == best)
        best_graph = contract.graph_of(best_trial)
        print(
            f"MNIST, first {TRAIN_IMAGES:,} training images, time_limit={TIME_LIMIT}, seed={SEED}"
        )
        print(f"fit took {seconds:.0f} s")
        print(
            f"trials: {len(found)} ({len(completed)} completed, {len(children)} morphism "
            f"children, {len(refined)} refinements, {len(found) - len(completed)} not completed)"
        )
        print(f"best trial {best}: val_accuracy {best_trial.score:.4f}, {best_graph.summary()}")
        print(f"best architecture: {best_graph.num_params():,} parameters")
        print(f"ensemble: {clf.ensemble_}")
        print(f"accuracy on the {len(x_test):,} MNIST test images: {accuracy:.4f}")
        for name in ("search.png", "best-architecture.png", "morphism-tree.png"):
            print(f"{IMAGES / name}: {os.path.getsize(IMAGES / name) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
