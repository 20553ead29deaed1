"""What a fitted task hands out: Keras models with the preprocessing, SavedModels, history."""

from __future__ import annotations

import os
import time

import numpy as np

from kerasnas import files, trials


def with_preprocessing(task, model):
    """`model` behind `task`'s preprocessing: a `keras.Model` from raw images as given to `fit`."""
    import keras

    raw = keras.Input(shape=task.input_shape_, dtype=task.input_dtype_, name="image")
    x = raw
    if len(task.input_shape_) == 2:
        x = keras.layers.Reshape((*task.input_shape_, 1), name="add_channel")(x)
    outputs = model(task.preprocessor_(x))
    return keras.Model(raw, outputs, name=f"kerasnas_{task.task}")


def saved_model(task, path):
    """Writes `task`'s model as a TensorFlow SavedModel, with `kerasnas_labels.json`.

    The signature calls the model in inference mode explicitly
    (`training=False`): Keras' default export leaves Dropout on when the
    model holds a `Resizing` layer, which made served outputs random.
    """
    import keras
    import tensorflow as tf

    model = task.export_model()
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda image: model(image, training=False),
        input_signature=[
            tf.TensorSpec((None, *task.input_shape_), task.input_dtype_, name="image")
        ],
    )
    archive.write_out(str(path), verbose=False)
    labels = {
        "task": task.task,
        "input_shape": list(task.input_shape_),
        "input_dtype": task.input_dtype_,
        "classes": task._targets_config().get("classes"),
    }
    files.write_json(os.path.join(str(path), "kerasnas_labels.json"), labels)
    return path


def cpu_latency(model, repeats=5, within=1.0):
    """Seconds `model` takes for one image on the CPU: the median of up to `repeats`
    calls after a first one, and no more calls once `within` seconds have gone.

    Args:
        model: a `keras.Model` of one input.
        repeats: most timed calls. Defaults to 5.
        within: seconds the timing may take after the first call. Defaults to 1.

    Returns:
        Seconds per image, a float.
    """
    import tensorflow as tf

    shape = tuple(d or 1 for d in model.inputs[0].shape[1:])
    image = np.zeros((1, *shape), dtype=model.inputs[0].dtype)
    times = []
    with tf.device("/CPU:0"):
        model(image, training=False)
        stop = time.perf_counter() + within
        while len(times) < repeats and (not times or time.perf_counter() < stop):
            started = time.perf_counter()
            model(image, training=False)
            times.append(time.perf_counter() - started)
    return float(np.median(times))


def history_frame(all_trials, objective):
    """One row per trial (see `ImageClassifier.history`)."""
    import pandas as pd

    rows = []
    for trial_id in sorted(all_trials):
        trial = all_trials[trial_id]
        row = {"trial_id": trial_id, objective: trial.score, "status": trial.status}
        if not trials.has_architecture(trial):  # read from a damaged file
            rows.append(row)
            continue
        graph = trials.graph_of(trial)
        parent_id = trials.parent_of(trial)
        steps = graph.history
        if parent_id and trials.has_architecture(all_trials.get(parent_id, trial)):
            steps = graph.morphisms_since(trials.graph_of(all_trials.get(parent_id, trial)))
        row.update(
            {
                trials.PARENT_TRIAL_ID: parent_id,
                "morphisms": [r["op"] for r in steps],
                trials.REFINE: trials.is_refinement(trial),
                "architecture": graph.summary(),
                "params": graph.num_params(),
                "flops": graph.flops(),
                trials.EPOCHS: round(float(trials.metric(trial, trials.EPOCHS, np.nan)), 2),
                trials.TRAIN_SECONDS: trials.metric(trial, trials.TRAIN_SECONDS, np.nan),
                trials.AUGMENTED_AFTER: trials.metric(trial, trials.AUGMENTED_AFTER, np.nan),
                trials.REASON: trials.reason_of(trial),
            }
        )
        rows.append(row)
    columns = [
        "trial_id",
        trials.PARENT_TRIAL_ID,
        "morphisms",
        trials.REFINE,
        "architecture",
        "params",
        "flops",
        trials.EPOCHS,
        trials.TRAIN_SECONDS,
        trials.AUGMENTED_AFTER,
        objective,
        "status",
        trials.REASON,
    ]
    frame = pd.DataFrame(rows, columns=columns)
    # Whole epochs, or <NA> for a trial that did not augment.
    frame[trials.AUGMENTED_AFTER] = frame[trials.AUGMENTED_AFTER].astype("Float64").round()
    frame[trials.AUGMENTED_AFTER] = frame[trials.AUGMENTED_AFTER].astype("Int64")
    return frame
