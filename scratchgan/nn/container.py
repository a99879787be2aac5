"""Containers of modules: :class:`ModuleList`, :class:`ModuleDict`, and the list operations of ``Sequential``.

A module held in one of these is registered like an attribute, so
``parameters()``, ``state_dict()``, ``train()``/``eval()`` and the optimizers
see it; a plain Python list or dict of modules would hide them (the same
reason PyTorch has these classes). List-like containers name their entries
``"0"``, ``"1"``, ... and renumber them when an entry is inserted or deleted,
as PyTorch does, so the ``state_dict`` names always follow the order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .module import Module, _check_name


def _as_module(owner, module, what: str) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{type(owner).__name__}.{what}: expected a Module, got {type(module).__name__}")
    return module


def _position(owner, index, length: int, *, insert: bool = False) -> int:
    """``index`` (an int, negative counting from the end) as a position in ``0..length-1``.

    ``insert``: positions up to ``length`` are valid and out-of-range ones are
    clipped, as ``list.insert`` does.
    """
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"{type(owner).__name__} indices must be integers or slices, not {type(index).__name__}")
    if insert:
        return max(0, min(index + length if index < 0 else index, length))
    position = index + length if index < 0 else index
    if not 0 <= position < length:
        raise IndexError(f"{type(owner).__name__} index {index} is out of range for {length} modules")
    return position


class _ListOps:
    """The list behaviour shared by :class:`ModuleList` and ``Sequential``: entries named "0", "1", ..."""

    def _entries(self) -> list:
        return list(self._modules.values())

    @classmethod
    def _of(cls, modules: list):
        """A new container of this type holding ``modules`` (what a slice returns)."""
        return cls(modules)

    def _renumber(self, modules: list) -> None:
        """Register ``modules`` as the entries "0".. "n-1", replacing the old ones."""
        for name in list(self._modules):
            delattr(self, name)
        for i, module in enumerate(modules):
            setattr(self, str(i), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._entries())

    def __getitem__(self, index):
        items = self._entries()
        if isinstance(index, slice):
            return self._of(items[index])
        return items[_position(self, index, len(items))]

    def __setitem__(self, index, module) -> None:
        position = _position(self, index, len(self))
        setattr(self, str(position), _as_module(self, module, "__setitem__"))

    def __delitem__(self, index) -> None:
        items = self._entries()
        if isinstance(index, slice):
            del items[index]
        else:
            del items[_position(self, index, len(items))]
        self._renumber(items)

    def append(self, module):
        """Add ``module`` at the end; returns self."""
        setattr(self, str(len(self)), _as_module(self, module, "append"))
        return self

    def extend(self, modules: Iterable):
        """Append every module of ``modules`` in order; returns self."""
        if isinstance(modules, (Module, Mapping)) and not isinstance(modules, _ListOps):
            raise TypeError(f"{type(self).__name__}.extend: expected an iterable of Modules, "
                            f"got {type(modules).__name__}")
        for module in list(modules):
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index``; later entries are renumbered."""
        items = self._entries()
        items.insert(_position(self, index, len(items), insert=True), _as_module(self, module, "insert"))
        self._renumber(items)

    def pop(self, index: int = -1) -> Module:
        """Remove and return the module at ``index`` (the last by default); later entries are renumbered."""
        if not len(self):
            raise IndexError(f"pop from an empty {type(self).__name__}")
        module = self[index]
        del self[index]
        return module

    def __iadd__(self, modules):
        return self.extend(modules)


class ModuleList(_ListOps, Module):
    """A list of modules whose parameters belong to the owner (PyTorch's ``nn.ModuleList``).

    Indexing, slicing (a new ModuleList sharing the modules), assignment,
    ``del``, ``append``, ``extend``, ``insert``, ``pop``, ``len`` and
    iteration work as on a list. It has no ``forward``: the owner decides how
    its entries are called, e.g. ``for layer in self.layers: x = layer(x)``.

    Parameters
    ----------
    modules : iterable of Module, optional
    """

    def __init__(self, modules: Iterable | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __add__(self, other) -> ModuleList:
        return ModuleList(list(self) + list(ModuleList(other)))


class ModuleDict(Module):
    """An ordered dict of modules whose parameters belong to the owner (PyTorch's ``nn.ModuleDict``).

    Keys are strings without dots (they become ``state_dict`` path parts).
    ``d[key]``, ``d[key] = module``, ``del d[key]``, ``in``, ``len``,
    iteration over the keys, ``keys``, ``values``, ``items``, ``update``,
    ``pop`` and ``clear`` work as on a dict; insertion order is kept.

    Parameters
    ----------
    modules : mapping or iterable of (key, Module) pairs, optional
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        try:
            return self._modules[key]
        except KeyError:
            raise KeyError(f"ModuleDict has no key {key!r}; its keys are {list(self._modules)}") from None

    def __setitem__(self, key: str, module: Module) -> None:
        _check_name(self, key, "ModuleDict key")
        if hasattr(type(self), key) or (key in self.__dict__ and key not in self._modules):
            raise KeyError(f"ModuleDict key {key!r} would hide the ModuleDict attribute of that name "
                           "(reach the entry with d[key] instead); choose another key")
        setattr(self, key, _as_module(self, module, "__setitem__"))

    def __delitem__(self, key: str) -> None:
        self[key]  # noqa: B018 -- the KeyError with the list of keys
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules))

    def __contains__(self, key) -> bool:
        return key in self._modules

    def keys(self):
        return list(self._modules.keys())

    def values(self):
        return list(self._modules.values())

    def items(self):
        return list(self._modules.items())

    def update(self, modules) -> None:
        """Add or replace entries from a mapping or from an iterable of ``(key, module)`` pairs."""
        if isinstance(modules, Module) and not isinstance(modules, ModuleDict):
            raise TypeError("ModuleDict.update: expected a mapping or (key, Module) pairs, "
                            f"got {type(modules).__name__}")
        pairs = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ModuleDict.update: entry {i} is {pair!r}, not a (key, Module) pair")
            self[pair[0]] = pair[1]

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        for key in list(self._modules):
            delattr(self, key)
