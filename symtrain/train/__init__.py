"""Training from recipes on Hugging Face Accelerate: ``symtrain train RECIPE``.

>>> from symtrain.train import resolve
>>> recipe = resolve({"data": {"name": "exp"}, "model": {"name": "gin"}}, ["optim.lr=1e-3"])
>>> recipe.optim.lr
0.001
"""

from .builders import (DATASETS, METHODS, MODELS, Task, TensorData, build, register_dataset,
                       register_method, register_model)
from .config import ConfigError, Recipe, load_recipe, resolve
from .trainer import Trainer, TrainingDiverged, train

__all__ = ["Recipe", "ConfigError", "load_recipe", "resolve", "Trainer", "TrainingDiverged",
           "train", "Task", "TensorData", "build", "DATASETS", "MODELS", "METHODS",
           "register_dataset", "register_model", "register_method"]
