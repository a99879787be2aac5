"""Optimizers (layer 5): SGD, Adam and RMSprop over a module's parameters, PyTorch's names and meaning.

The update rules live in :mod:`scratchgan.optim.optimizers`.
"""

from .optimizers import SGD, Adam, Optimizer, RMSprop

__all__ = ["SGD", "Adam", "Optimizer", "RMSprop"]
