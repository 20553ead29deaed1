"""kerasnas' callbacks; those of the budget on a fake clock, where a batch takes what the test
says."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from kerasnas.callbacks import (
    AugmentWhenOverfitting,
    BatchNormMomentum,
    EpochLine,
    EpochTimer,
    SaveBestWeights,
    TimeBudget,
    TimeCosineDecay,
    augment_when_overfitting,
    training_callbacks,
)
from kerasnas.testing import ticking


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


class RecordRate(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.rates = getattr(self, "rates", [])
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


class RecordEnd(keras.callbacks.Callback):
    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_train_end(self, logs=None):
        self.end = self.clock()


def data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 3, n)


def test_time_budget_stops_when_one_more_batch_would_pass_the_deadline(clock):
    budget = TimeBudget(clock() + 0.5, clock=clock)
    history = tiny_model().fit(
        *data(),
        batch_size=8,  # 8 batches of 0.05 s an epoch
        epochs=1000,
        verbose=0,
        validation_data=data(16),
        callbacks=[ticking(clock, train_batch=0.05), budget],
    )
    assert budget.stopped
    assert len(history.history["loss"]) == 2  # 9 batches: one epoch and one batch
    assert clock() == pytest.approx(budget.deadline - 0.05)
    # The interrupted epoch is still validated, so its score counts.
    assert len(history.history["val_loss"]) == len(history.history["loss"])


def test_time_budget_leaves_room_for_the_validation_pass(clock):
    """Validation takes 2 x 0.3 s: training stops so that the last epoch ends by the deadline."""
    deadline = clock() + 3.0
    budget = TimeBudget(deadline, validation_steps=2, clock=clock)
    end = RecordEnd(clock)
    tiny_model().fit(
        *data(),
        batch_size=8,
        epochs=1000,
        verbose=0,
        validation_data=data(16),  # 2 validation batches
        callbacks=[ticking(clock, train_batch=0.1, test_batch=0.3), budget, end],
    )
    assert budget.tail_seconds == pytest.approx(0.6)
    # Never past the deadline, and stopped only when one more batch and its validation
    # would have passed it.
    assert end.end <= deadline < end.end + 0.1 + 0.6


def test_time_budget_estimates_the_validation_pass_before_timing_it(clock):
    """Before any validation has been timed: half a training step per validation batch."""
    budget = TimeBudget(clock() + 100, validation_steps=10, clock=clock)
    tiny_model().fit(
        *data(),
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[ticking(clock, train_batch=0.2), budget],
    )
    assert budget.tail_seconds is not None  # measured at the epoch's end, no validation: 0
    fresh = TimeBudget(clock() + 100, validation_steps=10, clock=clock)
    fresh.on_train_begin()
    fresh._step_times.seconds = [0.2]
    assert fresh.expected_tail() == pytest.approx(0.5 * 0.2 * 10)


def test_time_budget_already_spent_stops_at_the_first_batch(clock):
    history = tiny_model().fit(
        *data(),
        batch_size=8,
        epochs=5,
        verbose=0,
        callbacks=[TimeBudget(clock() - 1, clock=clock)],
    )
    assert len(history.history["loss"]) == 1


def test_time_cosine_decay_anneals_to_the_floor_by_the_deadline(clock):
    record = RecordRate()
    deadline = clock() + 0.8
    tiny_model().fit(
        *data(),
        batch_size=8,
        epochs=1000,
        verbose=0,
        callbacks=[
            TimeCosineDecay(deadline, floor=0.1, clock=clock),
            ticking(clock, train_batch=0.05),
            TimeBudget(deadline, clock=clock),
            record,
        ],
    )
    rates = np.array(record.rates)
    assert len(rates) == 15  # the 16th batch would end at the deadline
    assert rates[0] == pytest.approx(0.01)  # the initial rate at the first batch
    assert np.all(np.diff(rates) < 0)  # falls at every batch
    # At the last batch 0.7 s of 0.8 have passed: floor + (1 - floor) * (1 + cos(pi * 14/16)) / 2.
    expected = 0.01 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 14 / 16)))
    assert rates[-1] == pytest.approx(expected, rel=1e-5)


def test_time_cosine_decay_anneals_by_the_last_epoch_when_epochs_end_first(clock):
    """Two epochs of 8 batches end long before the deadline: the rate follows the batches."""
    record = RecordRate()
    tiny_model().fit(
        *data(),
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[
            TimeCosineDecay(clock() + 1000, floor=0.1, clock=clock),
            ticking(clock, train_batch=0.05),
            record,
        ],
    )
    rates = np.array(record.rates)
    assert len(rates) == 16
    assert np.all(np.diff(rates) < 0)
    # The 16th batch starts after 15 of 16: near the floor, where time alone (0.75 s of
    # 1000) would have kept the rate at its start.
    expected = 0.01 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 15 / 16)))
    assert rates[-1] == pytest.approx(expected, rel=1e-5)


def test_time_cosine_decay_counts_every_step_of_a_multi_step_execution(clock):
    """With steps_per_execution=4, Keras calls the batch hooks once per four batches."""
    record = RecordRate()
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=model.loss, steps_per_execution=4)
    model.fit(
        *data(),
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[TimeCosineDecay(clock() + 1000, floor=0.1, clock=clock), record],
    )
    assert len(record.rates) == 4
    # The last execution starts after 12 of 16 batches (not after 3 calls).
    expected = 0.01 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 12 / 16)))
    assert record.rates[-1] == pytest.approx(expected, rel=1e-5)


def test_time_cosine_decay_factor_holds_at_the_floor_after_the_deadline(clock):
    decay = TimeCosineDecay(clock() + 10, floor=0.02, clock=clock)
    decay._start = clock()
    assert decay.factor(clock()) == pytest.approx(1.0)
    assert decay.factor(clock() + 5) == pytest.approx(0.51)
    assert decay.factor(clock() + 50) == pytest.approx(0.02)


def timed_fit(clock, *callbacks):
    """3 epochs of 8 training batches (0.05 s each) and 2 validation batches (0.5 s each)
    on the fake clock, which ticks before the other callbacks see a batch end."""
    timer = EpochTimer(clock=clock)
    tiny_model().fit(
        *data(),
        batch_size=8,
        epochs=3,
        verbose=0,
        validation_data=data(16),
        callbacks=[ticking(clock, train_batch=0.05, test_batch=0.5), timer, *callbacks],
    )
    return timer


def test_epoch_timer_times_every_epoch(clock):
    timer = timed_fit(clock)
    assert timer.epoch_seconds == pytest.approx([8 * 0.05 + 2 * 0.5] * 3)
    assert timer.epochs_trained() == pytest.approx(3)
    assert timer.full_epoch_seconds() == pytest.approx(8 * 0.05 + 2 * 0.5)


def test_epoch_timer_estimates_a_whole_epoch_from_a_cut_short_one(clock):
    class StopAfter(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                self.model.stop_training = True

    timer = timed_fit(clock, StopAfter())
    assert timer.epochs_trained() == pytest.approx(4 / 8)
    assert timer.epoch_seconds == pytest.approx([4 * 0.05 + 2 * 0.5])  # the part trained
    assert timer.full_epoch_seconds() == pytest.approx(8 * 0.05 + 2 * 0.5)  # a whole one


def batchnorm_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.BatchNormalization(name="bn")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def test_batchnorm_momentum_lets_few_batches_forget_the_initial_statistics():
    x, y = data(64)
    x = 3.0 + 0.1 * x  # far from the initial moving mean, 0
    default, lowered = batchnorm_model(), batchnorm_model()
    default.fit(x, y, batch_size=16, epochs=1, verbose=0)
    callback = BatchNormMomentum()
    lowered.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert callback.momentum == pytest.approx(0.05 ** (1 / 4))
    assert lowered.get_layer("bn").momentum == 0.99  # its own again, for saving and export
    mean = x.mean(axis=0)
    # After one epoch of four batches the initial values weigh 0.05, not 0.99**4.
    np.testing.assert_allclose(lowered.get_layer("bn").moving_mean.numpy(), mean, atol=0.25)
    assert np.all(np.abs(default.get_layer("bn").moving_mean.numpy() - mean) > 2.5)


class RecordMomentum(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.momentum = self.model.get_layer("bn").momentum


def test_batchnorm_momentum_keeps_the_default_when_an_epoch_has_many_batches():
    x, y = data(640)
    model, record = batchnorm_model(), RecordMomentum()
    callback = BatchNormMomentum()
    model.fit(x, y, batch_size=1, epochs=1, verbose=0, callbacks=[callback, record])
    assert callback.momentum == pytest.approx(0.05 ** (1 / 640))  # above 0.99
    assert record.momentum == 0.99


def test_batchnorm_momentum_rejects_a_stale_weight_outside_0_1():
    with pytest.raises(ValueError, match="between 0 and 1"):
        BatchNormMomentum(stale=1.0)


def overfitting_watch(ratio=2.0, epochs=8, **kwargs):
    """An `AugmentWhenOverfitting` as `fit` sets it up, and its switch (on before training)."""
    import tensorflow as tf

    switch = tf.Variable(True)
    callback = AugmentWhenOverfitting(switch, ratio=ratio, **kwargs)
    callback.set_params({"epochs": epochs})
    callback.on_train_begin()
    return callback, switch


def test_augment_when_overfitting_switches_on_once_validation_loss_is_ratio_times_the_loss():
    callback, switch = overfitting_watch()
    assert not bool(switch.numpy())  # every training starts without
    for epoch, logs in enumerate(
        [
            {"loss": 0.5, "val_loss": 0.4},
            {"loss": 0.1, "val_loss": 0.2},  # exactly twice: not over it
            {"loss": 0.05, "val_loss": 0.11},
            {"loss": 0.2, "val_loss": 0.1},  # augmented images closed the gap: it stays on
        ]
    ):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, logs)
        assert bool(switch.numpy()) == (epoch >= 2)
    # Three whole epochs came before the first augmented one.
    assert callback.augmented_after == 3


def test_augment_when_overfitting_counts_only_an_epoch_that_trained_augmented():
    callback, switch = overfitting_watch(epochs=4)
    callback.on_epoch_begin(0)
    callback.on_epoch_end(0, {"loss": 0.01})  # no validation data: nothing to judge
    callback.on_epoch_begin(1)
    callback.on_epoch_end(1, {"loss": 0.01, "val_loss": 0.5})
    assert bool(switch.numpy()) and callback.augmented_after is None  # not yet trained


@pytest.mark.parametrize(
    "epoch, seconds, switched",
    [(3, 10.0, True), (4, 10.0, False), (1, 50.0, True), (1, 51.0, False)],
)
def test_augment_when_overfitting_only_in_the_first_half_of_the_training(
    clock, epoch, seconds, switched
):
    # 8 epochs or 100 s: the first half ends after 4 epochs or 50 s, whichever comes first.
    callback, switch = overfitting_watch(epochs=8, deadline=clock() + 100, clock=clock)
    clock.advance(seconds)
    callback.on_epoch_end(epoch, {"loss": 0.01, "val_loss": 0.5})
    assert bool(switch.numpy()) == switched


@pytest.mark.parametrize("ratio", [1.0, 0.5, float("nan"), "2"])
def test_augment_when_overfitting_refuses_a_ratio_of_one_or_less(ratio):
    import tensorflow as tf

    with pytest.raises(ValueError, match="ratio.*Received"):
        AugmentWhenOverfitting(tf.Variable(False), ratio=ratio)


def test_augment_when_overfitting_sets_up_only_image_datasets():
    import tensorflow as tf

    images = np.zeros((4, 6, 6, 1), "float32")
    assert augment_when_overfitting(images, ratio=2.0) is None  # arrays: not a Dataset
    table = tf.data.Dataset.from_tensor_slices((np.zeros((4, 3), "float32"), np.zeros(4)))
    assert augment_when_overfitting(table.batch(2), ratio=2.0) is None
    dataset, callback = augment_when_overfitting(
        tf.data.Dataset.from_tensor_slices(images).batch(2), ratio=3.0
    )
    assert isinstance(callback, AugmentWhenOverfitting) and callback.ratio == 3.0
    assert dataset.element_spec.shape.as_list() == [None, 6, 6, 1]


@pytest.mark.slow  # a process of its own, for two logical CPUs
def test_augment_when_overfitting_switches_a_mirrored_strategys_pipeline():
    """Two replicas read the switch through the strategy's distributed copy of the Dataset."""
    code = textwrap.dedent("""
        import numpy as np, tensorflow as tf, keras
        cpu = tf.config.list_physical_devices("CPU")[0]
        two = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, two)
        from kerasnas import pipelines
        from kerasnas.callbacks import augment_when_overfitting

        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x, y = rng.random((64, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 64)
        dataset, callback = augment_when_overfitting(
            pipelines.array_dataset(x, y, batch_size=16), ratio=1.001
        )
        strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
        with strategy.scope():
            model = keras.Sequential([
                keras.Input((8, 8, 1)), keras.layers.Flatten(),
                keras.layers.Dense(64, activation="relu"), keras.layers.Dense(3, "softmax"),
            ])
            model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        # Validated on its own images, every label wrong: the more it learns, the more
        # it overfits (by epoch 2 validation loss is 5-20% above the loss, over seeds).
        model.fit(dataset, validation_data=(x, (y + 1) % 3), epochs=6, callbacks=[callback],
                  verbose=0)
        sums = lambda: np.sort(np.concatenate([b[0].numpy().sum((1, 2, 3)) for b in dataset]))
        assert callback.augmented_after in (1, 2, 3), callback.augmented_after
        assert not np.allclose(sums(), sums())  # the switch is on: every pass differs
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_an_epoch_that_ties_the_best_is_kept_when_its_validation_loss_is_lower(
    tmp_path, monkeypatch
):
    import keras_tuner

    from kerasnas import callbacks

    saved = []
    monkeypatch.setattr(callbacks.files, "save_weights", lambda model, path: saved.append(1))
    saver = SaveBestWeights(
        keras_tuner.Objective("val_accuracy", "max"), str(tmp_path / "w.weights.h5")
    )
    for epoch, (accuracy, val_loss) in enumerate(
        [(0.98, 0.09), (0.99, 0.06), (0.99, 0.07), (0.99, 0.04), (0.985, 0.01)]
    ):
        saver.on_epoch_end(epoch, {"loss": 0.1, "val_accuracy": accuracy, "val_loss": val_loss})
    assert len(saved) == 3  # epochs 0, 1 and 3: a tie with a higher loss is not kept
    assert (saver.best, saver.best_val_loss) == (0.99, 0.04)
    saver.on_epoch_end(5, {"loss": float("nan"), "val_accuracy": 1.0, "val_loss": 0.0})
    assert len(saved) == 3  # a diverged epoch is never kept


def test_a_loss_objective_keeps_the_lowest_epoch(tmp_path, monkeypatch):
    import keras_tuner

    from kerasnas import callbacks

    saved = []
    monkeypatch.setattr(callbacks.files, "save_weights", lambda model, path: saved.append(1))
    saver = SaveBestWeights(keras_tuner.Objective("val_loss", "min"), str(tmp_path / "w.h5"))
    for epoch, val_loss in enumerate([0.5, 0.3, 0.4, 0.3, 0.2]):
        saver.on_epoch_end(epoch, {"loss": 0.1, "val_loss": val_loss})
    assert len(saved) == 3 and saver.best == 0.2 and saver.best_val_loss is None


def test_epoch_lines_time_epochs_on_the_injected_clock(clock, capsys):
    line = EpochLine("0007", 10, clock=clock)
    line.on_epoch_begin(2)
    clock.advance(12.5)
    line.on_epoch_end(2, {"loss": 0.25, "val_accuracy": 0.5})
    out = capsys.readouterr()
    assert "Trial 0007 epoch 3/10: loss 0.2500, val_accuracy 0.5000 (12.5 s)" in out.out + out.err


@pytest.mark.parametrize("deadline", [None, 1_000_100.0])
def test_trials_and_final_fit_share_one_callback_stack_in_one_order(clock, deadline):
    middle = [EpochTimer(clock=clock)]
    found = training_callbacks(
        monitor="val_accuracy",
        mode="max",
        patience=2,
        deadline=deadline,
        validation_steps=3,
        clock=clock,
        middle=middle,
    )
    names = [type(c).__name__ for c in found]
    expected = ["TerminateOnNaN", "BatchNormMomentum", "EarlyStopping", "EpochTimer"]
    if deadline is not None:
        expected += ["TimeCosineDecay", "TimeBudget"]  # last: it times the tail
        assert found[-1].deadline == deadline and found[-1].validation_steps == 3
    assert names == expected
    stopping = found[2]
    assert (stopping.monitor, stopping.patience, stopping.restore_best_weights) == (
        "val_accuracy",
        2,
        False,
    )
