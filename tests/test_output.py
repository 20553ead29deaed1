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


def test_clearing_the_session_between_trials_keeps_interactive_logging_off():
    """Keras 3.15's `clear_session` turns interactive logging back on; the tuner's
    doesn't, so with it off every trial line goes to the `kerasnas` logger."""
    import keras

    from kerasnas.tuner import clear_session

    keras.utils.disable_interactive_logging()
    try:
        clear_session()
        still_off = not keras.config.is_interactive_logging_enabled()
    finally:
        keras.utils.enable_interactive_logging()
    assert still_off
