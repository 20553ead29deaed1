"""What users call: `ImageClassifier`, `ImageRegressor` and `load`."""

from kerasnas.tasks.image import ImageClassifier, ImageRegressor, NotFittedError, load

__all__ = ["ImageClassifier", "ImageRegressor", "NotFittedError", "load"]
