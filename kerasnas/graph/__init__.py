"""The architecture graph: the representation kerasnas searches over.

`Graph` describes a CNN, `layers` holds one spec per layer type,
`generators` makes the initial architectures, `morphism` changes them
without changing what they compute, `transfer` carries a parent's trained
weights onto a child, and `edit_distance` measures how far apart two
architectures are. Nothing here imports TensorFlow except `Graph.to_keras`
and `transfer`, which build models (through `keras_model`).
"""

from kerasnas.graph import generators, layers, morphism
from kerasnas.graph.distance import edit_distance
from kerasnas.graph.graph import Graph
from kerasnas.graph.transfer import transfer, transfer_weights

__all__ = [
    "Graph",
    "edit_distance",
    "generators",
    "layers",
    "morphism",
    "transfer",
    "transfer_weights",
]
