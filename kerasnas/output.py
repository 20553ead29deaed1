"""What kerasnas tells the user while it works: the `kerasnas` logger and `verbose`.

Progress lines (a trial starts or ends, one line per epoch at `verbose=2`) go
where Keras sends its own: to standard output while Keras' interactive logging
is on (the default), and to the `kerasnas` logger at level INFO once
`keras.utils.disable_interactive_logging()` is called. Everything else
(a failed trial, a fallback) goes to the `kerasnas` logger as a warning, and
mistakes in the user's input are `warnings.warn`, so `logging` and `warnings`
filters govern them; `user_stacklevel` makes such a warning point at the user's line.

`verbose` takes Keras' values:

- 0: silent.
- 1: one line when a trial starts and one when it ends (with the best score
  so far and the time left), plus Keras' per-batch progress bars when the
  output is interactive (a terminal or a notebook); in a log file, the lines only.
- 2: the same lines, plus one line per epoch, and never a progress bar: the
  output holds no carriage returns or backspaces.

`True` means 1 and `False` 0. The default, 1, writes a few lines per trial to a log file.

While a search runs, TensorFlow's warning that a function "triggered tf.function
retracing" is dropped (`quiet_retracing`): it is expected there, not a fault.
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
import sys

logger = logging.getLogger("kerasnas")


def check_verbose(verbose):
    """`verbose` as 0, 1 or 2, or a `ValueError` naming it."""
    if isinstance(verbose, bool):
        return int(verbose)
    if isinstance(verbose, numbers.Integral) and 0 <= verbose <= 2:
        return int(verbose)
    raise ValueError(
        "Expected `verbose` to be 0 (silent), 1 (a line per trial, progress bars when "
        f"interactive) or 2 (a line per epoch, no bars). Received: verbose={verbose!r}"
    )


def interactive():
    """Whether standard output is a terminal or a notebook, where progress bars redraw."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


def keras_fit_verbose(verbose):
    """The `verbose` to give Keras' `fit` for kerasnas' `verbose` (bars only when interactive)."""
    return 1 if verbose == 1 and interactive() else 0


def say(message):
    """Writes a progress line: to stdout, or to the logger when Keras' interactive logging
    is off."""
    try:
        from keras.utils import is_interactive_logging_enabled

        to_stdout = is_interactive_logging_enabled()
    except ImportError:  # Keras not imported yet, or too old to have it
        to_stdout = True
    if to_stdout:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
    else:
        logger.info(message)


def user_stacklevel():
    """The `stacklevel` for `warnings.warn` that points at the first caller outside kerasnas."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


class _DropRetracingWarnings(logging.Filter):
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def quiet_retracing():
    """Drops TensorFlow's "triggered tf.function retracing" warning inside the `with`.

    TensorFlow counts traces by the traced function's code, and Keras traces the same
    training-step code anew for every model, so a search sets the warning off after
    about five trials. Its advice (define the function once, outside the loop) does not
    apply: every architecture needs its own traced step. Other warnings pass.
    """
    tensorflow_logger = logging.getLogger("tensorflow")
    drop = _DropRetracingWarnings()
    tensorflow_logger.addFilter(drop)
    try:
        yield
    finally:
        tensorflow_logger.removeFilter(drop)
