from __future__ import annotations

import time

import keras
import numpy as np

from kerasnas.callbacks import EpochTimer, TimeBudget, TimeCosineDecay


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


class SlowBatches(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.05)


class RecordRate(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.rates = getattr(self, "rates", [])
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 3, n)


def test_time_budget_stops_within_a_batch_of_the_deadline():
    x, y = data()
    budget = TimeBudget(time.time() + 0.5)
    start = time.time()
    history = tiny_model().fit(
        x,
        y,
        batch_size=8,
        epochs=1000,
        verbose=0,
        validation_data=data(16),
        callbacks=[SlowBatches(), budget],
    )
    elapsed = time.time() - start
    assert budget.stopped
    assert elapsed < 0.5 + 1.5  # one batch, one validation pass, and Keras' start-up
    # The interrupted epoch is still validated, so its score counts.
    assert len(history.history["val_loss"]) == len(history.history["loss"]) >= 1


def test_time_budget_already_spent_stops_at_the_first_batch():
    x, y = data()
    history = tiny_model().fit(
        x, y, batch_size=8, epochs=5, verbose=0, callbacks=[TimeBudget(time.time() - 1)]
    )
    assert len(history.history["loss"]) == 1


def test_time_cosine_decay_anneals_to_the_floor_by_the_deadline():
    x, y = data()
    record = RecordRate()
    budget_seconds = 0.8
    deadline = time.time() + budget_seconds
    tiny_model().fit(
        x,
        y,
        batch_size=8,
        epochs=1000,
        verbose=0,
        callbacks=[
            TimeCosineDecay(deadline, floor=0.1),
            SlowBatches(),
            TimeBudget(deadline),
            record,
        ],
    )
    rates = np.array(record.rates)
    assert rates[0] > 0.009  # starts near the initial 0.01
    assert np.all(np.diff(rates) <= 1e-9)  # never rises
    assert rates[-1] < 0.003  # close to the floor (0.001) by the end


def test_epoch_timer_times_every_epoch():
    x, y = data()
    timer = EpochTimer()
    tiny_model().fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[timer, SlowBatches()])
    assert len(timer.epoch_seconds) == 3
    assert all(s >= 8 * 0.05 for s in timer.epoch_seconds)
