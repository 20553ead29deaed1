"""kerasnas: neural architecture search for Keras by network morphism.

Example:
    ```python
    import kerasnas

    clf = kerasnas.ImageClassifier(directory="runs/mnist", seed=1)
    clf.fit(x_train, y_train, time_limit=600)
    clf.evaluate(x_test, y_test)
    ```
"""

from kerasnas import datasets, errors, graph
from kerasnas.diagrams import plot_search, visualize
from kerasnas.graph import Graph
from kerasnas.tasks import ImageClassifier, ImageRegressor, NotFittedError, load

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
