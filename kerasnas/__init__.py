"""kerasnas: neural architecture search for Keras by network morphism.

Example:
    ```python
    import kerasnas

    clf = kerasnas.ImageClassifier(directory="runs/mnist", seed=1)
    clf.fit(x_train, y_train, time_limit=600)
    clf.evaluate(x_test, y_test)
    ```

kerasnas runs on Keras' TensorFlow backend: importing it while `KERAS_BACKEND` (or
Keras' configuration file, or an already imported Keras) selects another backend raises
one `ImportError` that says so.
"""

import json as _json
import os as _os
import sys as _sys


def _keras_backend():
    """`(backend, where it was set)` of the Keras backend that `import keras` picks (or
    picked), read without importing Keras, or `(None, None)` for TensorFlow's default."""
    keras = _sys.modules.get("keras")
    if keras is not None and hasattr(keras, "config"):
        return keras.config.backend(), "Keras, already imported,"
    if _os.environ.get("KERAS_BACKEND"):
        return _os.environ["KERAS_BACKEND"], "the environment variable KERAS_BACKEND"
    home = _os.environ.get("KERAS_HOME") or _os.path.join(
        _os.path.expanduser("~") if _os.access(_os.path.expanduser("~"), _os.W_OK) else "/tmp",
        ".keras",
    )
    path = _os.path.join(home, "keras.json")
    try:
        with open(path) as f:
            backend = _json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):
        return None, None
    return (backend, f"the Keras configuration file {path}") if backend else (None, None)


def _check_backend():
    """Refuses, at import, a Keras backend other than TensorFlow (the tuner, the data
    pipelines and the export are TensorFlow's)."""
    backend, source = _keras_backend()
    if backend not in (None, "tensorflow"):
        raise ImportError(
            f"kerasnas runs on Keras' TensorFlow backend, but {source} selects the "
            f"{backend!r} backend. Set the environment variable KERAS_BACKEND=tensorflow "
            "(or unset it) before Python imports Keras, e.g. `KERAS_BACKEND=tensorflow "
            "python script.py`, or `os.environ['KERAS_BACKEND'] = 'tensorflow'` before "
            "the first `import keras` of a notebook (restart its kernel if Keras is loaded)."
        )


_check_backend()

from kerasnas import datasets, errors, graph  # noqa: E402
from kerasnas.diagrams import plot_search, visualize  # noqa: E402
from kerasnas.graph import Graph  # noqa: E402
from kerasnas.tasks import ImageClassifier, ImageRegressor, NotFittedError, load  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Graph",
    "ImageClassifier",
    "ImageRegressor",
    "NotFittedError",
    "__version__",
    "datasets",
    "errors",
    "graph",
    "load",
    "plot_search",
    "visualize",
]
