"""A pickle reader for dataset files that can only build plain data and numeric numpy arrays.

`pickle.load` calls whatever the file names, so a hostile "CIFAR batch" could run code. Here
the few names that numpy array pickles use resolve to inert stand-ins that only record what
they are given; once the file is read, the stand-ins become arrays through `np.frombuffer`
with a numeric dtype. Any other name (os.system, builtins.eval, ...) is refused, so no code
named by the file ever runs, and no numpy code sees the file's dtype or flags.
"""

from __future__ import annotations

import io
import math
import pickle
from typing import Any

import numpy as np

# dtype codes a numeric array may have (byte order comes from the pickled state)
_NUMERIC = {"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"}
_PLAIN = (dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, bool, type(None))


class _NdarrayName:
    """What the file's `numpy.ndarray` resolves to: a marker, never instantiated by numpy."""


class _Dtype:
    def __init__(self, code: Any, align: Any = False, copy: Any = False):
        if not isinstance(code, str) or code.lstrip("<>|=") not in _NUMERIC:
            raise pickle.UnpicklingError(f"refused array dtype {code!r} (only numeric ones)")
        self.code, self.order = code.lstrip("<>|="), "<"

    def __setstate__(self, state: Any) -> None:
        # numpy's state: (version, byteorder, subarray, names, fields, elsize, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 5 or any(s is not None for s in state[2:5]):
            raise pickle.UnpicklingError("refused a structured or sub-array dtype")
        if state[1] in ("<", ">", "|", "="):
            self.order = state[1]

    def real(self) -> np.dtype:
        order = "=" if self.order == "|" else self.order
        return np.dtype(order + self.code)


class _Array:
    """Stand-in for an ndarray: records shape, dtype and raw bytes, builds nothing."""

    def __init__(self, shape: Any = None, dtype: Any = None, raw: Any = None, order: str = "C"):
        self.shape, self.dtype, self.raw, self.fortran = shape, dtype, raw, order == "F"

    def __setstate__(self, state: Any) -> None:
        # (version, shape, dtype, is_fortran, raw data)
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("refused an array state of unknown layout")
        _, self.shape, self.dtype, self.fortran, self.raw = state

    def real(self) -> np.ndarray:
        shape, dtype, raw = self.shape, self.dtype, self.raw
        if not isinstance(dtype, _Dtype):
            raise pickle.UnpicklingError("array without a numeric dtype")
        if not (isinstance(shape, tuple) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise pickle.UnpicklingError("array with a malformed shape")
        if isinstance(raw, str):  # Python 2 pickles read with encoding="latin1"
            raw = raw.encode("latin1")
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise pickle.UnpicklingError("array data is not bytes")
        dt = dtype.real()
        if len(raw) != math.prod(shape) * dt.itemsize:
            raise pickle.UnpicklingError("array data does not match its shape")
        a = np.frombuffer(raw, dtype=dt).copy()
        return a.reshape(shape, order="F" if self.fortran else "C")


def _reconstruct(cls: Any, shape: Any, code: Any) -> _Array:
    if cls is not _NdarrayName:
        raise pickle.UnpicklingError("refused _reconstruct of something other than ndarray")
    return _Array()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> _Array:  # protocol 5 arrays
    return _Array(tuple(shape) if isinstance(shape, (tuple, list)) else shape, dtype, buf, order)


def _encode(text: Any, encoding: str = "utf-8") -> bytes:  # how protocol 2 writes bytes
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refused _codecs.encode other than latin1 text")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy", "ndarray"): _NdarrayName,
    ("numpy", "dtype"): _Dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _encode,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _Array):
        return obj.real()
    if isinstance(obj, dict):
        return {_materialise(k): _materialise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    if not isinstance(obj, _PLAIN):
        raise pickle.UnpicklingError(f"refused an object of type {type(obj).__name__}")
    return obj


# A file can BUILD on the stand-ins themselves (set attributes of the classes and functions it
# is allowed to name); that runs no code, but would change the reader for later files.
_STANDINS = (_NdarrayName, _Dtype, _Array, _reconstruct, _frombuffer, _encode)


def _restore(snapshots: list[dict[str, Any]]) -> bool:
    """Put the stand-ins' attributes back as they were; True when something had changed."""
    changed = False
    for obj, before in zip(_STANDINS, snapshots, strict=True):
        now = dict(vars(obj))
        for key in now.keys() - before.keys():
            delattr(obj, key)
            changed = True
        for key, value in before.items():
            if now.get(key, _restore) is not value:
                setattr(obj, key, value)
                changed = True
    return changed


def loads(data: bytes) -> Any:
    """Unpickle `data` allowing only plain containers, str / bytes / numbers and numeric
    numpy arrays. Raises pickle.UnpicklingError on anything else."""
    snapshots = [dict(vars(obj)) for obj in _STANDINS]
    try:
        obj = _Unpickler(io.BytesIO(data), encoding="latin1").load()
    finally:
        tampered = _restore(snapshots)
    if tampered:
        raise pickle.UnpicklingError("refused a file that sets attributes of the reader itself")
    return _materialise(obj)
