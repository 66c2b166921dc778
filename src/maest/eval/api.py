"""What ``maest`` offers at the top level, gathered in one module so the package facade
(``maest/__init__.py``) imports lazily from one place, and ``import maest`` stays free of torch:

- :func:`create_model` builds a registered model (optionally from a checkpoint);
- :func:`load` rebuilds the model any maest checkpoint describes;
- :func:`predict` classifies videos with a classifier; :func:`read_video` gives a model its input.
"""

from maest.eval.predict import predict, read_video
from maest.loading import load
from maest.models import create_model

__all__ = ["create_model", "load", "predict", "read_video"]
