"""Reading CIFAR-10's pickle files without trusting them.

A CIFAR-10 batch is a pickled dict holding one numpy array. `pickle.load` would
run whatever the file names, and even numpy's own unpickling trusts the state it
is handed: a 62-byte file that sets a dtype's state crashes the process
(segmentation fault). So the unpickler here resolves only the names such a file
holds, to stand-ins that check what they are given, and builds each array itself
with `np.frombuffer` from a dtype among plain numbers, a shape and exactly the
bytes that shape needs. Nothing of numpy runs on the file's structure.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

# Plain numeric dtypes by numpy's pickled name (`np.dtype("u1", False, True)`): the images are
# "u1"; the rest covers labels saved as arrays. Object, string and structured dtypes are refused.
PLAIN_DTYPES = frozenset({"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"})
MAX_NDIM = 4


class NDArrayName:
    """Stands for `numpy.ndarray`, the class argument of `_reconstruct`."""


class DTypeStub:
    """Stands for `numpy.dtype(name, align, copy)` until its pickled state is set."""

    def __init__(self, name: object, align: object = False, copy: object = True) -> None:
        if not isinstance(name, str) or name not in PLAIN_DTYPES:
            raise pickle.UnpicklingError(f"refusing numpy dtype {name!r} (plain numbers only)")
        self.dtype = np.dtype(name)

    def __setstate__(self, state: object) -> None:
        """numpy's dtype state: (version, byte order, subarray, names, fields, size, alignment, flags)."""
        plain = isinstance(state, tuple) and len(state) >= 5 and all(s is None for s in state[2:5])
        order = state[1] if plain else None  # type: ignore[index]
        if not isinstance(order, str) or order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError("unexpected numpy dtype state")
        if order in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(order)


class Budget:
    """The bytes the stand-ins may still build from one file: twice its size (a protocol 2 file
    from Python 3 decodes each array's bytes once as text, then once into the array). One byte
    string used again and again would otherwise build copies without bound."""

    def __init__(self, file_bytes: int) -> None:
        self.left = 2 * file_bytes + 4096

    def charge(self, n: int) -> None:
        """Spend `n` bytes; UnpicklingError when the file builds more than it holds."""
        self.left -= n
        if self.left < 0:
            raise pickle.UnpicklingError("the file builds more data than it holds (the same bytes used again and again)")


class ArrayStub:
    """Stands for the empty array `_reconstruct` makes, until its pickled state fills it."""

    array: np.ndarray | None = None

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def __setstate__(self, state: object) -> None:
        """numpy's array state: ([version,] shape, dtype, is_fortran, raw bytes)."""
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not (isinstance(state, tuple) and len(state) == 4):
            raise pickle.UnpicklingError("unexpected numpy array state")
        shape, dtype, fortran, raw = state
        fortran = isinstance(fortran, int) and fortran == 1  # True, or 1 in an old pickle
        self.array = array_from_bytes(raw, dtype, shape, "F" if fortran else "C", self.budget)


def array_from_bytes(raw: object, dtype: object, shape: object, order: object, budget: Budget) -> np.ndarray:
    """A writable array of `shape` from exactly its bytes, charged to `budget`; UnpicklingError
    for anything else."""
    if isinstance(raw, str):  # a Python 2 pickle's str, read as latin-1 (one byte a character)
        budget.charge(len(raw))
        raw = raw.encode("latin-1")
    if not isinstance(raw, (bytes, bytearray)) or not isinstance(dtype, DTypeStub):
        raise pickle.UnpicklingError("numpy array without plain bytes and a plain dtype")
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not (isinstance(shape, tuple) and len(shape) <= MAX_NDIM
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):  # fmt: skip
        raise pickle.UnpicklingError(f"numpy array with shape {shape!r}")
    if math.prod(shape) * dtype.dtype.itemsize != len(raw):
        raise pickle.UnpicklingError(f"numpy array of shape {shape} and dtype {dtype.dtype} with {len(raw)} bytes")
    budget.charge(len(raw))
    # A native-order copy, as numpy's unpickling gives (frombuffer's view would be read-only).
    flat = np.frombuffer(raw, dtype=dtype.dtype).astype(dtype.dtype.newbyteorder("="))
    return flat.reshape(shape, order="F" if order == "F" else "C")


def _empty_bytes(*args: object) -> bytes:
    """`bytes()`, as protocol 2 pickles an empty bytes object; no arguments (bytes(n) allocates n)."""
    if args:
        raise pickle.UnpicklingError("bytes() with arguments")
    return b""


MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")  # numpy 1's module name, and numpy 2's
NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")


class SafeUnpickler(pickle.Unpickler):
    """Resolves only the names a CIFAR-10 pickle holds, to checked stand-ins that build at most
    `Budget` bytes."""

    def __init__(self, file: Any, file_bytes: int) -> None:
        super().__init__(file, encoding="latin1")
        self.budget = Budget(file_bytes)
        self.names: dict[tuple[str, str], Any] = {
            **{(m, "_reconstruct"): self._reconstruct for m in MULTIARRAY},
            **{(m, "scalar"): self._scalar for m in MULTIARRAY},
            **{(m, "_frombuffer"): self._frombuffer for m in NUMERIC},
            ("numpy", "ndarray"): NDArrayName,
            ("numpy", "dtype"): DTypeStub,
            ("_codecs", "encode"): self._encode,
            **{(m, "bytes"): _empty_bytes for m in ("builtins", "__builtin__")},
        }

    def find_class(self, module: str, name: str) -> Any:
        """The stand-in for `module.name`; UnpicklingError for any other name."""
        if (module, name) not in self.names:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return self.names[(module, name)]

    def _reconstruct(self, subtype: object, shape: object, typecode: object) -> ArrayStub:
        if subtype is not NDArrayName:
            raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
        return ArrayStub(self.budget)

    def _frombuffer(self, buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
        """Protocol 5's form of an array (in-band buffer)."""
        return array_from_bytes(buf, dtype, shape, order, self.budget)

    def _scalar(self, dtype: object, raw: object = b"") -> np.generic:
        return array_from_bytes(raw, dtype, (), "C", self.budget)[()]

    def _encode(self, text: object, encoding: object = "utf-8") -> bytes:
        """`_codecs.encode`, as protocol 2 pickles bytes from Python 3 (latin-1 only)."""
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError("_codecs.encode other than a str to latin-1")
        self.budget.charge(len(text))
        return text.encode("latin-1")


def _resolved(value: object) -> object:
    """A top-level value with its array stand-in replaced by the array it was filled with."""
    if isinstance(value, ArrayStub):
        if value.array is None:
            raise pickle.UnpicklingError("numpy array without its state")
        return value.array
    if isinstance(value, DTypeStub):
        return value.dtype
    return value


def load(path: Path) -> object:
    """The object pickled in `path` (a dict's values resolved to numpy arrays).

    OSError when the file cannot be read; any other exception means it is not such a pickle
    (a corrupt one fails in many ways: UnpicklingError, EOFError, AttributeError, MemoryError, ...).
    """
    with path.open("rb") as f:
        obj = SafeUnpickler(f, os.fstat(f.fileno()).st_size).load()
    if isinstance(obj, dict):
        return {key: _resolved(value) for key, value in obj.items()}
    return _resolved(obj)
