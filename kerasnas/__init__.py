"""kerasnas: neural architecture search for Keras by network morphism."""

from kerasnas import datasets, graph
from kerasnas.graph import Graph

__version__ = "0.1.0"

__all__ = ["Graph", "datasets", "graph", "__version__"]
