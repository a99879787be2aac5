"""Crash-safe storage for a nested training-state tree.

A checkpoint is one ``.npz`` (zip) file:

* every NumPy array leaf is a member named after its path in the tree,
  e.g. ``arrays/G/0.weight`` (names are for humans; the mapping lives in
  the metadata, so odd keys cannot confuse the loader);
* member ``__meta__`` is a ``uint8`` array holding UTF-8 JSON with the
  format name, the format version and the tree with every array leaf
  replaced by a reference to its member.

Nothing needs pickle, so :func:`load_checkpoint` uses
``np.load(allow_pickle=False)`` and a checkpoint can never run code.

Saving is atomic: the bytes go to a temporary file in the target's folder
(``.<name>.<random>.tmp``), which is flushed, fsynced and then renamed onto
the target with :func:`os.replace`; finally the folder itself is fsynced
where the OS allows it. A crash at any moment leaves either the previous
complete checkpoint or the new complete one at ``path``, never a mixture.
A process killed mid-save may leave its temporary file behind; the loader
never looks at it, and :func:`cleanup_temp_files` removes such leftovers
(call it at start-up, when no other process is saving to the same path).
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "cleanup_temp_files",
]

FORMAT_NAME = "scratchgan-checkpoint"
FORMAT_VERSION = 1

_META_KEY = "__meta__"
_ARRAY_REF = "__ndarray__"  # placeholder for an ndarray leaf
_SCALAR_REF = "__npscalar__"  # placeholder for a NumPy scalar leaf (np.float32(1.0), ...)
_RESERVED_KEYS = (_ARRAY_REF, _SCALAR_REF)
_ALLOWED_KINDS = "biufc"  # bool, signed, unsigned, float, complex
_TMP_SUFFIX = ".tmp"


class CheckpointError(Exception):
    """A checkpoint file is missing, damaged, foreign or too new to read."""


# ---------------------------------------------------------------------------
# Encoding the tree
# ---------------------------------------------------------------------------


def _path_str(path: tuple) -> str:
    return "/".join(str(p) for p in path) or "<root>"


def _check_array(value: np.ndarray, path: tuple) -> None:
    if value.dtype.kind not in _ALLOWED_KINDS:
        raise TypeError(
            f"checkpoint leaf {_path_str(path)!r} has dtype {value.dtype}; "
            "only bool and numeric arrays can be stored (no object, string "
            "or structured arrays)"
        )


def _encode(value: Any, path: tuple, arrays: dict[str, np.ndarray]) -> Any:
    """Return the JSON-able form of ``value``, moving arrays into ``arrays``."""
    if isinstance(value, (np.ndarray, np.generic)):
        # np.generic first: np.float64 is also a Python float and would
        # otherwise lose its dtype through JSON.
        arr = np.asarray(value)
        _check_array(arr, path)
        name = "arrays/" + _path_str(path)
        if name in arrays or name == _META_KEY:
            raise ValueError(
                f"two checkpoint leaves map to the member name {name!r}; "
                "avoid '/' inside dict keys"
            )
        arrays[name] = arr
        ref = _ARRAY_REF if isinstance(value, np.ndarray) else _SCALAR_REF
        return {ref: name}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"checkpoint dict keys must be str, got {type(key).__name__} "
                    f"key {key!r} at {_path_str(path)!r}"
                )
            if key in _RESERVED_KEYS:
                raise ValueError(f"dict key {key!r} at {_path_str(path)!r} is reserved")
            out[key] = _encode(item, path + (key,), arrays)
        return out
    if isinstance(value, (list, tuple)):  # tuples come back as lists
        return [_encode(item, path + (i,), arrays) for i, item in enumerate(value)]
    raise TypeError(
        f"checkpoint leaf {_path_str(path)!r} has unsupported type "
        f"{type(value).__module__}.{type(value).__name__}; use NumPy arrays "
        "(convert device arrays to NumPy first), numbers, str, None, lists or dicts"
    )


def _decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`_encode`."""
    if isinstance(value, dict):
        if len(value) == 1 and _ARRAY_REF in value:
            return arrays[value[_ARRAY_REF]]
        if len(value) == 1 and _SCALAR_REF in value:
            return arrays[value[_SCALAR_REF]][()]
        return {key: _decode(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, arrays) for item in value]
    return value


def _array_refs(value: Any) -> list[str]:
    """All member names referenced by an encoded tree."""
    if isinstance(value, dict):
        if len(value) == 1 and (_ARRAY_REF in value or _SCALAR_REF in value):
            return [next(iter(value.values()))]
        return [name for item in value.values() for name in _array_refs(item)]
    if isinstance(value, list):
        return [name for item in value for name in _array_refs(item)]
    return []


# ---------------------------------------------------------------------------
# Atomic writing
# ---------------------------------------------------------------------------


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _open_temp(path: Path) -> tuple[int, Path]:
    """Create a fresh temporary file next to ``path``; return (fd, temp path).

    ``os.open`` with mode 0o666 lets the umask decide the permissions, as for
    any ordinary new file (``mkstemp`` would force 0o600).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(_temp_prefix(path) + secrets.token_hex(6) + _TMP_SUFFIX)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue


def _write_npz(fileobj, arrays: dict[str, np.ndarray]) -> None:
    """Write the members (a seam for tests that simulate a failing write)."""
    np.savez(fileobj, **arrays)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; not possible on every OS (e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | os.PathLike, tree: dict) -> None:
    """Atomically write a nested state tree to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; used exactly as given (no suffix is added). Its folder
        must exist. An existing file there is replaced only once the new
        checkpoint is complete and on disk.
    tree : dict
        Nested dicts (``str`` keys) and lists whose leaves are NumPy arrays or
        NumPy scalars of bool/numeric dtype, or ``int``, ``float``, ``bool``,
        ``str`` or ``None``. Tuples are stored as lists. Python ints of any
        size are kept exactly (e.g. a PCG64 state); floats round-trip exactly
        (including ``nan`` and ``inf``).

    Raises
    ------
    TypeError
        A leaf has an unsupported type (object array, CuPy array, ...).
    ValueError
        A reserved key is used, or two leaves map to the same member name.
    OSError
        Writing failed; ``path`` is then untouched and the temporary file is
        removed.
    """
    if not isinstance(tree, dict):
        raise TypeError(f"checkpoint tree must be a dict, got {type(tree).__name__}")
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "tree": _encode(tree, (), arrays),
    }
    meta_bytes = json.dumps(meta, allow_nan=True).encode("utf-8")
    arrays[_META_KEY] = np.frombuffer(meta_bytes, dtype=np.uint8)

    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave our own half-written file.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def cleanup_temp_files(path: str | os.PathLike) -> list[Path]:
    """Remove temporary files left by saves to ``path`` that were killed.

    Only call this when no other process is saving to the same ``path``:
    it would delete that save's file in progress.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(_temp_prefix(path) + "*" + _TMP_SUFFIX):
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass
    return removed


# ---------------------------------------------------------------------------
# Safe loading
# ---------------------------------------------------------------------------


def _fail(path: Path, problem: str, advice: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {str(path)!r}: {problem}; {advice}")


def _read_members(path: Path) -> dict[str, np.ndarray]:
    """Read every member eagerly, so that a bad CRC surfaces here.

    We open the file ourselves: ``np.load(path)`` leaks its file handle
    when the zip directory is damaged.
    """
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic[:2] != b"PK":
            # np.load would try pickle next (and refuse); say what is really wrong.
            what = "is empty" if not magic else "is not an .npz (zip) file"
            raise _fail(path, f"{what}: truncated, corrupt or another format",
                        "restore it from a backup or use an older checkpoint")
        f.seek(0)
        with np.load(f, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a tree written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or os.PathLike
        Checkpoint file.

    Returns
    -------
    dict
        The saved tree: arrays as NumPy arrays with identical dtype, shape and
        bits, NumPy scalars as NumPy scalars, tuples as lists.

    Raises
    ------
    CheckpointError
        The file is missing, truncated or corrupt (not a zip, bad CRC,
        undecodable metadata), not a scratchgan checkpoint, holds object or
        other non-numeric arrays, or was written by a newer format version.
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, "file not found", "check the path or start a fresh run")
    if not path.is_file():
        raise _fail(path, "is not a regular file", "pass the checkpoint file itself")
    try:
        members = _read_members(path)
    except CheckpointError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise _fail(path, "holds pickled or object data, which is never loaded",
                        "only load checkpoints written by save_checkpoint") from exc
        raise _fail(path, f"is corrupt or truncated ({exc})",
                    "restore it from a backup or use an older checkpoint") from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise _fail(path, f"is corrupt or truncated ({type(exc).__name__}: {exc})",
                    "restore it from a backup or use an older checkpoint") from exc

    meta = _read_meta(path, members)
    for name, arr in members.items():
        if arr.dtype.kind not in _ALLOWED_KINDS:
            raise _fail(path, f"member {name!r} has non-numeric dtype {arr.dtype}",
                        "only load checkpoints written by save_checkpoint")
    refs = _array_refs(meta["tree"])
    if set(refs) != set(members) - {_META_KEY}:
        raise _fail(path, "metadata and stored arrays disagree",
                    "the file is damaged; use an older checkpoint")
    return _decode(meta["tree"], members)


def _read_meta(path: Path, members: dict[str, np.ndarray]) -> dict:
    """Decode and validate the JSON metadata member."""
    if _META_KEY not in members:
        raise _fail(path, f"is an .npz without the {FORMAT_NAME!r} marker",
                    "it was not written by scratchgan.save_checkpoint")
    raw = members[_META_KEY]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _fail(path, "has a malformed metadata entry",
                    "it was not written by scratchgan.save_checkpoint")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"has unreadable metadata ({exc})",
                    "the file is damaged; use an older checkpoint") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise _fail(path, f"is an .npz without the {FORMAT_NAME!r} marker",
                    "it was not written by scratchgan.save_checkpoint")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, f"has an invalid format version {version!r}",
                    "the file is damaged; use an older checkpoint")
    if version > FORMAT_VERSION:
        raise _fail(path, f"uses format version {version}, newer than the supported "
                    f"version {FORMAT_VERSION}", "upgrade scratchgan to load it")
    if "tree" not in meta:
        raise _fail(path, "metadata has no state tree",
                    "the file is damaged; use an older checkpoint")
    return meta
