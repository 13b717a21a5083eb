"""The provided recipes, shipped as package data (``*.yaml`` next to this file) and found
with :mod:`importlib.resources`, so ``symtrain recipes`` works from any install.
See :mod:`symtrain.train.recipes`."""
