"""output: what kerasnas tells the user while it works."""

from __future__ import annotations

import logging

import pytest

from kerasnas.output import quiet_retracing

RETRACING = "triggered tf.function retracing"


# TensorFlow counts traces by the function's code, and warns at most twice per code:
# one step function for each half of the test.
def step_inside(x):
    return x + 1


def step_outside(x):
    return x + 1


def traces_anew(step, count=8):
    """Traces `step` `count` times, a new tf.function each time, as Keras does per model."""
    import tensorflow as tf

    for _ in range(count):
        tf.function(step)(tf.constant(1.0))


@pytest.fixture
def tensorflow_warnings():
    """The messages the `tensorflow` logger emits during the test."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    tensorflow_logger = logging.getLogger("tensorflow")
    tensorflow_logger.addHandler(handler)
    yield messages
    tensorflow_logger.removeHandler(handler)


def test_quiet_retracing_drops_tensorflows_retracing_warning_and_nothing_else(
    tensorflow_warnings,
):
    with quiet_retracing():
        traces_anew(step_inside)
        logging.getLogger("tensorflow").warning("another warning")
    assert tensorflow_warnings == ["another warning"]
    traces_anew(step_outside)  # after the `with`, the warning is back
    assert any(RETRACING in message for message in tensorflow_warnings[1:])


def test_with_interactive_logging_off_every_trial_line_goes_to_the_kerasnas_logger(
    tmp_path, caplog, capsys
):
    import keras

    import kerasnas
    from kerasnas.testing import quadrant_images

    x, y = quadrant_images(120, seed=0)
    keras.utils.disable_interactive_logging()
    try:
        clf = kerasnas.ImageClassifier(directory=tmp_path, max_trials=2, seed=0, verbose=1)
        with caplog.at_level(logging.INFO, logger="kerasnas"):
            clf.fit(x, y, epochs=1)
        still_off = not keras.config.is_interactive_logging_enabled()
    finally:
        keras.utils.enable_interactive_logging()
    assert still_off  # each trial's clear_session left the user's setting alone
    logged = [r.getMessage() for r in caplog.records if r.name == "kerasnas"]
    assert sum(m.startswith("Trial 1") for m in logged) >= 1  # the second trial's lines too
    assert "Trial" not in capsys.readouterr().out
