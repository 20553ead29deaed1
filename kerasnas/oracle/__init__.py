"""The search: `NetworkMorphismOracle`, a KerasTuner Oracle over architectures.

`gp.py` (Gaussian process, acquisitions) and `annealing.py` (the acquisition
optimiser) are numpy and scipy only; `network_morphism.py` adapts them to
KerasTuner.
"""

from kerasnas.oracle.network_morphism import (
    ARCHITECTURE,
    EPOCH_SECONDS,
    PARENT_TRIAL_ID,
    REFINE,
    TRAIN_SECONDS,
    NetworkMorphismOracle,
)

__all__ = [
    "ARCHITECTURE",
    "EPOCH_SECONDS",
    "PARENT_TRIAL_ID",
    "REFINE",
    "TRAIN_SECONDS",
    "NetworkMorphismOracle",
]
