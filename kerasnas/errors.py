"""The exceptions kerasnas raises for its own reasons, in one place.

Two kinds of failure stop a search in different ways: a bad candidate fails its trial
and the search goes on (KerasTuner's `FailedTrialError`); a user's mistake or damaged
files stop it with one of these, or a `ValueError` that names the argument.
"""

from __future__ import annotations


class NotFittedError(ValueError, AttributeError):
    """Raised when an estimator is used before `fit`: predicting, evaluating, exporting.

    A `ValueError` and an `AttributeError`, as scikit-learn's: call `fit` first, or
    reopen a finished search with `kerasnas.load(directory)`.
    """


class RunFileError(ValueError):
    """A file of a run directory that cannot be read; the message names it and what to do.

    Args:
        message: the message.
        path: the file. Defaults to None.

    Attributes:
        path: the file, or None.
    """

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class MissingRunFileError(FileNotFoundError, RunFileError):
    """A file of a run directory that is not there (also a `FileNotFoundError`).

    Args:
        message: the message.
        path: the file. Defaults to None.
    """

    def __init__(self, message, path=None):
        FileNotFoundError.__init__(self, message)
        self.path = path


class MorphismError(ValueError):
    """Raised when a morphism cannot be applied to a graph, or a child graph does not
    descend from the parent it is given (`kerasnas.graph.transfer`)."""
