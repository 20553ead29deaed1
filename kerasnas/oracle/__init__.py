"""The search: `NetworkMorphismOracle`, a KerasTuner Oracle over architectures.

`gp.py` (Gaussian process, acquisitions) and `annealing.py` (the acquisition
optimiser) are numpy and scipy only; `network_morphism.py` adapts them to
KerasTuner. The keys a trial carries are in `kerasnas.trials`. The adapter is
imported on first use, so that `kerasnas.oracle.gp` loads without TensorFlow.
"""

__all__ = ["NetworkMorphismOracle", "kernel_distances"]


def __getattr__(name):
    if name in __all__:
        from kerasnas.oracle import network_morphism

        return getattr(network_morphism, name)
    raise AttributeError(f"module 'kerasnas.oracle' has no attribute {name!r}")
