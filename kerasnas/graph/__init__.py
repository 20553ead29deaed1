"""The architecture graph: the representation kerasnas searches over.

`Graph` describes a CNN, `generators` makes the initial ones, `morphism`
changes them without changing what they compute, and `edit_distance`
measures how far apart two of them are. Nothing here imports TensorFlow
except `Graph.to_keras` and `morphism.transfer`, which build models.
"""

from kerasnas.graph import generators, morphism
from kerasnas.graph.distance import edit_distance
from kerasnas.graph.graph import Graph

__all__ = ["Graph", "edit_distance", "generators", "morphism"]
