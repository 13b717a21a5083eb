"""Training from recipes on Hugging Face Accelerate: ``symtrain train RECIPE``.

>>> from symtrain.train import resolve
>>> recipe = resolve({"data": {"name": "exp"}, "model": {"name": "gin"}}, ["optim.lr=1e-3"])
>>> recipe.optim.lr
0.001
"""

from ..data import Task, TensorData, register_dataset
from ..models import register_model
from .build import build, build_model, build_task
from .config import ConfigError, Recipe, load_recipe, resolve
from .methods import Built, list_methods, register_method
from .recipes import find_recipe, list_recipes
from .trainer import Trainer, TrainingDiverged, train

__all__ = ["Recipe", "ConfigError", "load_recipe", "resolve", "Trainer", "TrainingDiverged", "train",
           "build", "build_task", "build_model", "Built", "list_methods", "register_method",
           "find_recipe", "list_recipes", "Task", "TensorData", "register_dataset", "register_model"]
