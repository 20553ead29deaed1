"""Checks for constructor arguments, with errors that name the argument and what is allowed."""

from __future__ import annotations

import math
import numbers

import numpy as np


def check_int(name, value, minimum=None, allow_none=False):
    """`value` as an int, or a ValueError naming `name`.

    Args:
        name: the argument's name, for the message.
        value: what was passed.
        minimum: the smallest allowed value. Defaults to None (no bound).
        allow_none: whether None is allowed (and returned). Defaults to False.

    Returns:
        `int(value)`, or None.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(_message(name, value, "an integer", minimum, None, allow_none))
    if minimum is not None and value < minimum:
        raise ValueError(_message(name, value, "an integer", minimum, None, allow_none))
    return int(value)


def check_number(
    name, value, low=None, high=None, allow_none=False, low_open=False, high_open=False
):
    """`value` as a finite float within `[low, high]` (`low_open`, `high_open`: bounds
    excluded), or a ValueError.

    Args:
        name: the argument's name, for the message.
        value: what was passed.
        low: the smallest allowed value. Defaults to None (no bound).
        high: the largest allowed value. Defaults to None (no bound).
        allow_none: whether None is allowed (and returned). Defaults to False.
        low_open: whether `low` itself is excluded. Defaults to False.
        high_open: whether `high` itself is excluded. Defaults to False.

    Returns:
        `float(value)`, or None.
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value)
        ok = ok and (low is None or (value > low if low_open else value >= low))
        ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        kind = "a finite number"
        raise ValueError(_message(name, value, kind, low, high, allow_none, low_open, high_open))
    return value


def check_choice(name, value, choices):
    """`value` if it is one of `choices`, else a ValueError listing them."""
    if value not in choices:
        raise ValueError(
            f"Expected `{name}` to be one of {', '.join(repr(c) for c in choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def _message(name, value, kind, low, high, allow_none, low_open=False, high_open=False):
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high}")
    wanted = kind + (" " + " and ".join(bounds) if bounds else "")
    if allow_none:
        wanted += ", or None"
    return f"Expected `{name}` to be {wanted}. Received: {name}={value!r}"


def check_input_shape(input_shape):
    """`(height, width, channels)`, three positive ints; a `ValueError` naming it otherwise."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    integral = (int, np.integer)
    if (
        shape is None
        or len(shape) != 3
        or not all(isinstance(d, integral) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        raise ValueError(
            "Expected `input_shape` to be (height, width, channels), three positive integers. "
            f"Received: input_shape={input_shape!r}"
        )
    return tuple(int(d) for d in shape)
