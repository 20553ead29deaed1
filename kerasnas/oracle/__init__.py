"""The search: `NetworkMorphismOracle`, a KerasTuner Oracle over architectures.

The maths and the rules are numpy and scipy only, and import neither TensorFlow nor
KerasTuner:

- `schedule.py`: the budget policy (how the time limit is spent), `BudgetSchedule`;
- `measurements.py`: what the trials measured (epoch costs, overheads, efforts);
- `proposals.py`: the choice of a morphism child (kernel, acquisition, `CandidateSearch`);
- `gp.py`, `annealing.py`, `cost.py`: the Gaussian process, its optimiser, the epoch cost.

`network_morphism.py` adapts them to KerasTuner. The keys a trial carries are in
`kerasnas.trials`. The adapter is imported on first use, so that the rest loads without
TensorFlow.
"""

__all__ = ["NetworkMorphismOracle", "kernel_distances"]


def __getattr__(name):
    if name == "NetworkMorphismOracle":
        from kerasnas.oracle.network_morphism import NetworkMorphismOracle

        return NetworkMorphismOracle
    if name == "kernel_distances":
        from kerasnas.oracle.proposals import kernel_distances

        return kernel_distances
    raise AttributeError(f"module 'kerasnas.oracle' has no attribute {name!r}")
