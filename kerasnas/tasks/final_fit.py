"""`final_fit`: the chosen architecture trained longer, on all the training data.

Its step of "data to Keras": a last training of the chosen model (the ensemble's, as
one model) on feeds from `feeds.py`, after the search; the weights go to
`final.weights.h5` in the run directory, named in `kerasnas.json`.
"""

from __future__ import annotations

import errno
import os
import time

from kerasnas import files
from kerasnas.arguments import check_int
from kerasnas.oracle import schedule
from kerasnas.output import check_verbose, keras_fit_verbose, say
from kerasnas.tasks import data as datalib
from kerasnas.tasks import ensemble, feeds, reading, run_dir
from kerasnas.tasks.inputs import check_time_limit


def overfit_ratio(task):
    """The `overfit_ratio` of `task.searcher_args` (as the oracle reads it, `"auto"` by
    default), from which a `final_fit` without `augment` turns to augmented images."""
    from kerasnas.oracle.schedule import check_overfit_ratio

    given = task.searcher_args or {}
    return check_overfit_ratio(given.get("overfit_ratio", "auto"), task.task)


def run(task, x_train, y_train, x_test, y_test, retrain, time_limit, epochs, batch_size,
        class_weight, validation_data=None):  # fmt: skip
    """Trains `task`'s chosen architecture; see `ImageTask.final_fit`. Returns `task`."""
    import keras

    from kerasnas.callbacks import augment_when_overfitting, training_callbacks

    start = time.time()
    task._check_fitted()
    if time_limit is not None:
        time_limit = check_time_limit(time_limit)
    epochs = check_int("epochs", epochs, minimum=1, allow_none=True)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    verbose = check_verbose(task.verbose)
    train = reading.read_like_fit(task, x_train, y_train, "x_train", labelled=True, decode_all=True)
    encoded = task._encode(train.labels, "y_train")
    per_class = None
    if class_weight is not None:
        per_class = feeds.class_weights(class_weight, encoded, task.classes_)
    weights = None if train.streamed else feeds.sample_weights(None, 0, per_class, encoded)
    test = None
    if x_test is not None:  # checked now, read again only to report, after training
        test = reading.read_like_fit(task, x_test, y_test, "x_test", labelled=True)
        task._encode(test.labels, "y_test")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(
                "Expected `validation_data` to be a tuple (x_val, y_val). "
                f"Received: validation_data of type {type(validation_data).__name__}"
            )
        val = reading.read_like_fit(
            task, *validation_data, "validation_data", labelled=True, decode_all=True
        )
        val_encoded = task._encode(val.labels, "validation_data")
    elif train.streamed and train.files is None:
        raise ValueError(
            "Expected `validation_data` for a streamed tf.data.Dataset `x_train`: kerasnas "
            "cannot hold out images from a stream, and `x_test` only reports."
        )
    else:
        if train.count < 2:
            raise ValueError(
                f"Expected at least 2 images in `x_train` to hold some out; got {train.count}."
            )
        train, encoded, weights, val, val_encoded = reading.split(
            train, encoded, weights, schedule.FINAL_VALIDATION_SPLIT, None
        )
    model = task._fresh_model()
    if not retrain:
        model.set_weights(task.model_.get_weights())
    model.compile(
        optimizer=keras.optimizers.Adam(
            schedule.FINAL_RETRAIN_RATE if retrain else schedule.FINAL_TUNE_RATE
        ),
        loss=task._loss(),
        metrics=task._metrics(),
    )
    deadline = None
    if time_limit is not None:
        deadline = start + time_limit - schedule.reserve_seconds(time_limit)
    augment = task.augment or task._best_trial_augmented()
    args, kwargs = feeds.training_feed(
        task, train, encoded, weights, per_class, batch_size, augment=augment
    )
    ratio = None if augment else overfit_ratio(task)
    watch = None
    if ratio is not None:
        found = augment_when_overfitting(args[0], ratio=ratio, deadline=deadline)
        if found is not None:  # (a Dataset of image batches always)
            args, watch = (found[0], *args[1:]), found[1]
    callbacks = training_callbacks(
        monitor="val_" + task._metrics()[0],
        mode="max" if task.task == "classification" else "min",
        patience=schedule.FINAL_PATIENCE,
        deadline=deadline,
        # Room for the last validation pass, and for the test report after it.
        validation_steps=datalib.count_batches(val.count + (test.count if test else 0), batch_size),
        restore_best_weights=True,
        middle=[watch] if watch is not None else [],
    )
    model.fit(
        *args,
        validation_data=feeds.keras_validation(
            feeds.validation_feed(task, val, val_encoded, batch_size), batch_size
        ),
        epochs=epochs or (schedule.FINAL_EPOCHS if time_limit else schedule.FINAL_EPOCHS_UNTIMED),
        shuffle=False,  # the Dataset shuffles itself
        callbacks=callbacks,
        verbose={0: 0, 1: keras_fit_verbose(1), 2: 2}[verbose],
        **kwargs,
    )
    _save(task, model)
    task.model_ = model
    task.final_test_score_ = None
    if test is not None:
        task.final_test_score_ = task.evaluate(x_test, y_test, batch_size=batch_size)
        if verbose:
            say(
                f"final_fit: {ensemble.METRIC[task.task]} {task.final_test_score_:.4f} on the "
                f"{test.count:,} test images (reported only: epochs and weights were chosen "
                f"on {val.count:,} validation images)"
            )
    return task


def _save(task, model):
    """Writes `model`'s weights as the run's final weights and names them in `kerasnas.json`;
    on failure `task` names the weights it named before."""
    path = os.path.join(task.project_dir, run_dir.FINAL_WEIGHTS)
    try:
        files.save_weights(model, path)
        task.final_weights_, old = run_dir.FINAL_WEIGHTS, task.final_weights_
        try:
            task._save_metadata()
        except BaseException:
            task.final_weights_ = old
            raise
    except Exception as e:
        if files.is_disk_full(e):
            raise OSError(
                errno.ENOSPC,
                f"No space left on the device of {task.project_dir} to save the final "
                "weights; the search's model is kept. Free some space and call `final_fit` "
                "again",
            ) from e
        raise
