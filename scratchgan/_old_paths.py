"""The module paths of scratchgan before the layer folders, kept importable.

``import scratchgan.train`` (say) gives the module that now lives at
``scratchgan.app.train``: the same module object, so patching one patches
the other. The table is docs/conventions.md's "Where the modules went".
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: Old paths that do not resolve: ``sg.tensor`` and ``sg.gradcheck`` are functions, and importing a
#: submodule of the same name would replace the package's function by the module (the import system sets
#: the package's attribute). Import them from their new paths.
NOT_KEPT = {
    "scratchgan.tensor": "scratchgan.autograd.tensor",
    "scratchgan.gradcheck": "scratchgan.autograd.gradcheck",
}

#: old path -> new path
OLD_PATHS = {
    "scratchgan.validate": "scratchgan.backend.validate",
    "scratchgan.device_rng": "scratchgan.backend.device_rng",
    "scratchgan.engine": "scratchgan.autograd.engine",
    "scratchgan.random": "scratchgan.autograd.random",
    "scratchgan.memory": "scratchgan.accel.memory",
    "scratchgan.kernels": "scratchgan.accel.kernels",
    "scratchgan.cuda_graph": "scratchgan.accel.cuda_graph",
    "scratchgan.losses": "scratchgan.gan.losses",
    "scratchgan.losses.objectives": "scratchgan.gan.losses.objectives",
    "scratchgan.losses.penalties": "scratchgan.gan.losses.penalties",
    "scratchgan.losses.classification": "scratchgan.gan.losses.classification",
    "scratchgan.models": "scratchgan.gan.models",
    "scratchgan.auxiliary": "scratchgan.gan.auxiliary",
    "scratchgan.metrics": "scratchgan.gan.metrics",
    "scratchgan.viz": "scratchgan.study.viz",
    "scratchgan.profiler": "scratchgan.study.profiler",
    **{f"scratchgan.{name}": f"scratchgan.app.{name}" for name in (
        "data", "config", "runlog", "checkpoint", "distributed", "train", "plots", "cli", "process", "classifier",
        "image_eval")},
}


class OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module path to the module at its new path (imported if need be)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in OLD_PATHS:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(OLD_PATHS[spec.name])

    def exec_module(self, module):
        pass  # the module ran when it was imported under its new path


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, OldPathFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, OldPathFinder())  # before the path finder, which would load a second copy
