"""Test doubles for kerasnas and code built on it: a fake clock, tiny images, a simulated search.

What the tests and the benchmarks share lives here, importable as `kerasnas.testing`
(as `keras.src.testing` holds Keras' own): no test imports `conftest`, and no benchmark
puts `tests/` on its path.

- `FakeClock`, `ticking`: time that moves only when told, for budget logic.
- `quadrant_images`: (n, 8, 8) images three classes apart, for tiny searches.
- `randomize_batchnorm`: non-trivial BatchNormalization statistics, for morphism checks.
- `OracleSearch`, `RandomMorphismSearch`, `simulate`, `compare`: the oracle against random
  morphism search on an analytic objective, on a fake clock (no training).
"""

from __future__ import annotations

import tempfile

import numpy as np

from kerasnas import trials
from kerasnas.graph import generators, morphism

# Input shapes the property tests cover: digits, MNIST, CIFAR-like.
SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3)]


class FakeClock:
    """A `time.time` stand-in: `clock()` returns the time, `advance(s)` moves it on."""

    def __init__(self, start=1_000_000.0):
        self.now = float(start)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += float(seconds)


def ticking(clock, train_batch=0.0, test_batch=0.0, train_begin=0.0):
    """A Keras callback that advances `clock` by the given seconds per training/validation
    batch, and by `train_begin` when training begins (as building and tracing take).

    Place it before the callbacks under test, so they see the batch's time.
    """
    import keras

    class Tick(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            clock.advance(train_begin)

        def on_train_batch_end(self, batch, logs=None):
            clock.advance(train_batch)

        def on_test_batch_end(self, batch, logs=None):
            clock.advance(test_batch)

    return Tick()


def quadrant_images(n, seed, dtype="uint8"):
    """(n, 8, 8) images whose class (0-2) is the brightest of three quadrants, and the classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 0.3, (n, 8, 8))
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, r * 4 : r * 4 + 4, c * 4 : c * 4 + 4] += 0.7
    return ((x * 255).astype("uint8") if dtype == "uint8" else x.astype(dtype)), y


def randomize_batchnorm(model, rng):
    """Gives every BatchNormalization layer clearly non-trivial parameters and statistics."""
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                    rng.normal(0, 0.5, beta.shape).astype("float32"),
                    rng.normal(0, 0.5, mean.shape).astype("float32"),
                    rng.uniform(0.5, 2.0, var.shape).astype("float32"),
                ]
            )


# A simulated search: no training, an architecture's score is an analytic function that
# peaks at a certain depth and size (plus noise), and training it costs simulated seconds
# proportional to its FLOPs, on a fake clock.

SHAPE, CLASSES = (28, 28, 1), 10
PEAK_DEPTH, PEAK_FLOPS = 14, 8e7


def true_score(graph):
    """Peaks at depth 14 and 80 MFLOPs; an architecture's score falls off on either side."""
    depth_term = 0.004 * abs(graph.depth() - PEAK_DEPTH)
    size_term = 0.01 * abs(np.log2(graph.flops() / PEAK_FLOPS))
    return 0.99 - depth_term - size_term


def cost_seconds(graph):
    """Simulated seconds to train: 1 s per MFLOP (the initial graphs cost ~25 s)."""
    return graph.flops() / 1e6


class RandomMorphismSearch:
    """The baseline: a random trained architecture, then 1 to 5 random morphisms."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.initial = generators.initial_graphs(SHAPE, CLASSES)
        self.trained, self.seen = [], set()

    def propose(self):
        if len(self.trained) < len(self.initial):
            return self.initial[len(self.trained)]
        for _ in range(100):
            graph = self.trained[int(self.rng.integers(len(self.trained)))]
            for _ in range(int(self.rng.integers(1, 6))):
                graph = morphism.random_morphism(graph, self.rng)
            if graph.architecture_key() not in self.seen:
                return graph
        return None

    def tell(self, graph, score, seconds):
        self.trained.append(graph)
        self.seen.add(graph.architecture_key())


class OracleSearch:
    """The oracle, driven through KerasTuner's trial API."""

    def __init__(self, seed, directory, with_deadline=True, **oracle_kwargs):
        self.clock = FakeClock()
        from kerasnas.oracle import NetworkMorphismOracle

        self.oracle = NetworkMorphismOracle(
            SHAPE, CLASSES, seed=seed, clock=self.clock, **oracle_kwargs
        )
        self.oracle._set_project_dir(directory, f"oracle_{seed}")
        self.oracle.verbose = 0
        self.with_deadline = with_deadline
        self.trial = None

    def propose(self, remaining=None):
        if self.with_deadline and remaining is not None:
            self.oracle.set_deadline(self.clock() + remaining)
        self.trial = self.oracle.create_trial("tuner0")
        if self.trial.status != "RUNNING":
            return None
        return trials.graph_of(self.trial)

    def tell(self, graph, score, seconds):
        self.clock.advance(seconds)
        self.oracle.update_trial(
            self.trial.trial_id,
            {"val_accuracy": score, trials.EPOCH_SECONDS: seconds, trials.EPOCHS: 1.0},
        )
        self.trial.status = "COMPLETED"
        self.oracle.end_trial(self.trial)


def synthetic_oracle(size, directory, seed=0):
    """An oracle whose history holds `size` completed trials, made without proposing:
    random morphism chains (1 to 3 steps) from random earlier trials, scored by
    `true_score` plus noise, timed by `cost_seconds`, as a long search would leave."""
    import keras_tuner
    from keras_tuner.engine import trial as trial_module

    from kerasnas.oracle import NetworkMorphismOracle

    rng = np.random.default_rng(seed)
    oracle = NetworkMorphismOracle(SHAPE, CLASSES, seed=seed, clock=FakeClock())
    oracle._set_project_dir(directory, f"synthetic_{size}")
    made = []
    for index in range(size):
        if index < 3:
            graph, parent = generators.initial_graphs(SHAPE, CLASSES)[index], ""
        else:
            parent_index = int(rng.integers(len(made)))
            graph = made[parent_index]
            for _ in range(int(rng.integers(1, 4))):
                graph = morphism.random_morphism(graph, rng)
            parent = f"{parent_index:04d}"
        hp = keras_tuner.HyperParameters()
        for name, value in trials.values(graph, parent).items():
            hp.Fixed(name, value)
        trial = trial_module.Trial(hp, trial_id=f"{index:04d}", status="COMPLETED")
        score = true_score(graph) + rng.normal(0, 0.002)
        seconds = cost_seconds(graph)
        metrics = {"val_accuracy": score, trials.EPOCH_SECONDS: seconds, trials.EPOCHS: 1.0}
        metrics[trials.TRAIN_SECONDS] = seconds + 2.0
        for name, value in metrics.items():
            trial.metrics.register(name, direction="max")
            trial.metrics.update(name, value)
        trial.score = score
        oracle.trials[trial.trial_id] = trial
        made.append(graph)
    return oracle


def simulate(searcher, budget, seed):
    """Runs `searcher` until the simulated budget is spent.

    Returns:
        `(best true score, simulated seconds when first reached, trials)`.
    """
    noise = np.random.default_rng(seed + 1000)
    spent, best, best_at, count = 0.0, -np.inf, 0.0, 0
    while spent < budget:
        if isinstance(searcher, OracleSearch):
            graph = searcher.propose(remaining=budget - spent)
        else:
            graph = searcher.propose()
        if graph is None:
            break
        seconds = cost_seconds(graph)
        if spent + seconds > budget:
            break
        spent += seconds
        count += 1
        score = true_score(graph)
        searcher.tell(graph, score + noise.normal(0, 0.002), seconds)
        if score > best:
            best, best_at = score, spent
    return best, best_at, count


def compare(seeds, budget):
    """`{name: [(best, best_at, trials) per seed]}` for the oracle and random search."""
    results = {"oracle": [], "random": []}
    with tempfile.TemporaryDirectory() as directory:
        for seed in seeds:
            results["oracle"].append(simulate(OracleSearch(seed, directory), budget, seed))
            results["random"].append(simulate(RandomMorphismSearch(seed), budget, seed))
    return results


# A recorded search, replayed: fixed per-architecture timings and scores on a fake clock,
# so that two versions of the oracle can be held to the same decisions.
REPLAY_SHAPE, REPLAY_CLASSES = (28, 28, 1), 10


def replay_epoch_seconds(graph, scale=1.0):
    """The replay machine's epoch: about 20 s for the 32-filter MNIST CNN at `scale` 1."""
    return scale * (2.0 + graph.flops() / 2.5e6)


def replay_score(graph, epochs):
    """Validation accuracy after `epochs` of `graph`: better deeper, wider and longer."""
    depth_term = 0.003 * abs(graph.depth() - 12)
    size_term = 0.004 * abs(np.log2(max(graph.num_params(), 1) / 4e5))
    return float(0.99 - depth_term - size_term - 0.03 / (1.0 + epochs))


def replay_search(directory, *, budget=None, scale=1.0, trials_at_most=40, seed=1, **kwargs):
    """Drives a `NetworkMorphismOracle` through a whole search on a `FakeClock`.

    Each trial trains what its plan allows at `replay_epoch_seconds` (plus a fixed
    overhead), scores `replay_score`, and reports the timings the tuner would; the
    probe times the oracle's `probe_graphs`. Nothing trains.

    Args:
        directory: the oracle's project directory.
        budget: seconds for `set_deadline`, or None for no deadline.
        scale: the machine's slowness: every timing is multiplied by it.
        trials_at_most: trials to run unless the oracle stops first.
        seed: the oracle's seed.
        **kwargs: passed to `NetworkMorphismOracle`.

    Returns:
        `(decisions, oracle)`: one dict per trial (`trial_id`, `architecture` (the first
        16 digits of its key, a SHA-256 of its layers),
        `parent`, `refine`, `plan`, `epochs`) and the oracle.
    """
    from kerasnas.oracle import NetworkMorphismOracle

    clock = FakeClock()
    oracle = NetworkMorphismOracle(REPLAY_SHAPE, REPLAY_CLASSES, seed=seed, clock=clock, **kwargs)
    oracle._set_project_dir(str(directory), "replay")
    oracle.verbose = 0
    overhead = 3.0 * scale
    if budget is not None:
        oracle.set_deadline(clock() + budget)
        if oracle.needs_probe():
            for graph in oracle.probe_graphs():
                seconds = replay_epoch_seconds(graph, scale)
                oracle.set_probe(graph, seconds, overhead)
                clock.advance(0.02 * seconds + 0.2 * scale)
    decisions = []
    for _ in range(trials_at_most):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        graph, plan = trials.graph_of(trial), trials.plan_of(trial)
        epoch = replay_epoch_seconds(graph, scale)
        if plan is None or plan.seconds is None:
            epochs = 2.0
        else:
            epochs = min(max(0.0, plan.seconds - overhead) / epoch, 30.0)
        spent = overhead + epochs * epoch
        clock.advance(spent)
        oracle.update_trial(
            trial.trial_id,
            {
                "val_accuracy": replay_score(graph, epochs),
                trials.EPOCH_SECONDS: epoch,
                trials.EPOCHS: epochs,
                trials.TRAIN_SECONDS: spent,
            },
        )
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        decisions.append(
            {
                "trial_id": trial.trial_id,
                "architecture": graph.architecture_key()[:16],
                "parent": trials.parent_of(trial),
                "refine": trials.is_refinement(trial),
                "plan": None if plan is None else plan.get_config(),
                "epochs": epochs,
            }
        )
    return decisions, oracle


REPLAY_SCENARIOS = {
    "sized_15E": {"budget": 300.0},
    "sized_40E": {"budget": 800.0},
    "short_3E": {"budget": 60.0},
    "ablation_15E": {"budget": 300.0, "search": False},
    "no_deadline": {"budget": None, "max_trials": 8},
    "fast_machine": {"budget": 300.0, "scale": 0.25},
    "slow_machine": {"budget": 300.0, "scale": 4.0},
    "ucb_no_augment": {"budget": 800.0, "acquisition": "ucb", "augment_epochs": None},
}


def record_replays(path):
    """Replays every search of `REPLAY_SCENARIOS` and writes its decisions to `path` as
    JSON, the form `tests/test_compat.py` checks today's oracle against. Run it only
    when a decision changes on purpose, and say so in the commit.

    Args:
        path: the JSON file to write (`tests/data/oracle_replay.json`).
    """
    import json

    recorded = {}
    for name, scenario in sorted(REPLAY_SCENARIOS.items()):
        with tempfile.TemporaryDirectory() as directory:
            decisions, oracle = replay_search(directory, **scenario)
        recorded[name] = {"augment": oracle.augment, "decisions": decisions, "width": oracle.width}
    with open(path, "w") as f:
        json.dump(recorded, f, indent=1, sort_keys=True)
        f.write("\n")


def die_halfway_through(kind, when):
    """Makes this process kill itself with SIGKILL halfway through a run-file write.

    What the kill leaves is what a real one would: the half-written temporary file that
    the atomic write would have renamed over its target. For crash tests, in a child
    process only.

    Args:
        kind: `"json"` (`kerasnas.files.write_json`) or `"checkpoint"` (the copy of a
            `.weights.h5` file into the run directory, `kerasnas.files.copy_file`).
        when: `when(path, count)`, called before each such write with its target and how
            many there have been (1 for the first): True kills.
    """
    import json
    import os
    import signal

    from kerasnas import files

    count = [0]

    def torn(path, data):
        handle, _ = tempfile.mkstemp(
            dir=os.path.dirname(os.path.abspath(path)),
            prefix="." + os.path.basename(path) + ".",
            suffix=".tmp",
        )
        os.write(handle, data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

    if kind == "json":
        write_json = files.write_json

        def dying_write_json(path, obj, indent=2):
            count[0] += 1
            if when(path, count[0]):
                torn(path, json.dumps(obj, indent=indent).encode())
            return write_json(path, obj, indent)

        files.write_json = dying_write_json
    elif kind == "checkpoint":
        copy_file = files.copy_file

        def dying_copy_file(source, path):
            if str(path).endswith(".weights.h5"):
                count[0] += 1
                if when(path, count[0]):
                    with open(source, "rb") as f:
                        torn(path, f.read())
            return copy_file(source, path)

        files.copy_file = dying_copy_file
    else:
        raise ValueError(f"Expected `kind` to be 'json' or 'checkpoint'. Received: kind={kind!r}")


def frameworks_imported_by(*modules):
    """Which of TensorFlow, Keras and KerasTuner a fresh interpreter loads to import
    `modules` (names, e.g. `"kerasnas.oracle.gp"`): `[]` for numpy-only code.

    Raises:
        RuntimeError: if the import itself fails (with its error output).
    """
    import json
    import subprocess
    import sys

    code = (
        f"import json, sys\nimport {', '.join(modules)}\n"
        "print(json.dumps(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') "
        "if m in sys.modules)))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if found.returncode != 0:
        raise RuntimeError(found.stderr)
    return json.loads(found.stdout.strip().splitlines()[-1])
