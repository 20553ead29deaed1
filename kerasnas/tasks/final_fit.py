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
from kerasnas.output import check_verbose, keras_fit_verbose
from kerasnas.tasks import data as datalib
from kerasnas.tasks import feeds, reading, run_dir
from kerasnas.tasks.inputs import check_time_limit

HOLD_OUT = 0.1  # of the training images, to monitor when no `x_test` is given
RETRAIN_LEARNING_RATE = 1e-3  # from fresh weights
FINE_TUNE_LEARNING_RATE = 3e-4  # on from the search's weights
PATIENCE = 5  # epochs without a better monitored score before early stopping
EPOCHS_WITH_TIME_LIMIT, EPOCHS_WITHOUT = 100, 20  # most epochs when none are given
END_MARGIN, END_SHARE = 3.0, 0.05  # the deadline: min(END_MARGIN, END_SHARE * limit) early


def overfit_ratio(task):
    """The `overfit_ratio` of `task.searcher_args` (as the oracle reads it, `"auto"` by
    default), from which a `final_fit` without `augment` turns to augmented images."""
    from kerasnas.oracle.schedule import check_overfit_ratio

    given = task.searcher_args or {}
    return check_overfit_ratio(given.get("overfit_ratio", "auto"), task.task)


def callback_stack(monitor, mode, deadline, validation_steps, augment_watch=None):
    """The callbacks of `final_fit`'s training, in their order.

    Args:
        monitor: the validation metric early stopping watches (e.g. `"val_accuracy"`).
        mode: `"max"` or `"min"`, its direction.
        deadline: the `time.time()` by which training must end, or None.
        validation_steps: validation batches per epoch (`TimeBudget`'s room to validate).
        augment_watch: the callback that turns augmentation on once the model overfits
            (see `augment_when_overfitting`), or None.

    Returns:
        A list of Keras callbacks; `TimeBudget`, if any, last: it times the tail.
    """
    import keras

    from kerasnas.callbacks import BatchNormMomentum, TimeBudget, TimeCosineDecay

    callbacks = [
        BatchNormMomentum(),
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=PATIENCE, restore_best_weights=True
        ),
    ]
    if augment_watch is not None:
        callbacks.append(augment_watch)
    if deadline is not None:
        callbacks += [
            TimeCosineDecay(deadline),
            TimeBudget(deadline, validation_steps=validation_steps),
        ]
    return callbacks


def run(task, x_train, y_train, x_test, y_test, retrain, time_limit, epochs, batch_size,
        class_weight):  # fmt: skip
    """Trains `task`'s chosen architecture; see `ImageTask.final_fit`. Returns `task`."""
    import keras

    from kerasnas.callbacks import augment_when_overfitting

    start = time.time()
    task._check_fitted()
    if time_limit is not None:
        time_limit = check_time_limit(time_limit)
    epochs = check_int("epochs", epochs, minimum=1, allow_none=True)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    verbose = check_verbose(task.verbose)
    train = reading.read_like_fit(task, x_train, y_train, "x_train", labelled=True)
    encoded = task._encode(train.labels, "y_train")
    per_class = None
    if class_weight is not None:
        per_class = feeds.class_weights(class_weight, encoded, task.classes_)
    weights = None if train.streamed else feeds.sample_weights(None, 0, per_class, encoded)
    if x_test is not None:
        val = reading.read_like_fit(task, x_test, y_test, "x_test", labelled=True)
        val_encoded = task._encode(val.labels, "y_test")
    elif train.streamed and train.files is None:
        raise ValueError(
            "Expected `x_test` for a streamed tf.data.Dataset `x_train`: kerasnas cannot "
            "hold out images from a stream."
        )
    else:
        if train.count < 2:
            raise ValueError(
                f"Expected at least 2 images in `x_train` to hold some out; got {train.count}."
            )
        train, encoded, weights, val, val_encoded = reading.split(
            train, encoded, weights, HOLD_OUT, None
        )
    model = task._fresh_model()
    if not retrain:
        model.set_weights(task.model_.get_weights())
    model.compile(
        optimizer=keras.optimizers.Adam(
            RETRAIN_LEARNING_RATE if retrain else FINE_TUNE_LEARNING_RATE
        ),
        loss=task._loss(),
        metrics=task._metrics(),
    )
    deadline = None
    if time_limit is not None:
        deadline = start + time_limit - min(END_MARGIN, END_SHARE * time_limit)
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
    callbacks = callback_stack(
        "val_" + task._metrics()[0],
        "max" if task.task == "classification" else "min",
        deadline,
        datalib.count_batches(val.count, batch_size),
        augment_watch=watch,
    )
    model.fit(
        *args,
        validation_data=feeds.keras_validation(
            feeds.validation_feed(task, val, val_encoded, batch_size), batch_size
        ),
        epochs=epochs or (EPOCHS_WITH_TIME_LIMIT if time_limit else EPOCHS_WITHOUT),
        shuffle=False,  # the Dataset shuffles itself
        callbacks=callbacks,
        verbose={0: 0, 1: keras_fit_verbose(1), 2: 2}[verbose],
        **kwargs,
    )
    _save(task, model)
    task.model_ = model
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
