"""The restricted unpickler (`auditor.unpickle`): what a CIFAR-10 file holds loads as numpy
would load it; names, dtypes and states outside that are refused, and no crafted file can
crash the process or run code."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CRASHES_NUMPY

from auditor import unpickle

# A protocol 2 pickle as Python 2 wrote the official batches: the raw bytes a str (SHORT_BINSTRING),
# read as latin-1. Here a 2x2 uint8 array [[0, 1], [254, 255]].
PY2_ARRAY = (
    b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85U\x01b\x87Rq\x03"
    b"(K\x01K\x02K\x02\x86cnumpy\ndtype\nq\x04U\x02u1K\x00K\x01\x87Rq\x05"
    b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x04\x00\x01\xfe\xfftb."
)


def _load(tmp_path: Path, blob: bytes) -> object:
    path = tmp_path / "batch"
    path.write_bytes(blob)
    return unpickle.load(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize(
    "array",
    [np.arange(24, dtype=np.uint8).reshape(2, 12), np.asfortranarray(np.arange(12, dtype=">i8").reshape(3, 4)),
     np.array([], dtype=np.int64), np.float32(2.5), np.arange(5, dtype=np.int32)],
    ids=["uint8", "fortran-big-endian", "empty", "scalar", "int32"],
)  # fmt: skip
def test_arrays_load_as_numpy_loads_them(tmp_path: Path, protocol: int, array: np.ndarray) -> None:
    batch = {"batch_label": "b", "data": array, "labels": [1, np.int64(2)]}
    got = _load(tmp_path, pickle.dumps(batch, protocol=protocol))
    want = pickle.loads(pickle.dumps(batch, protocol=protocol))
    assert isinstance(got, dict) and got.keys() == want.keys() and got["labels"] == [1, 2]
    assert np.array_equal(got["data"], want["data"])  # in native byte order (numpy keeps '>' in protocol 5 only)
    assert got["data"].dtype == want["data"].dtype.newbyteorder("=")
    if isinstance(got["data"], np.ndarray):
        assert got["data"].flags.writeable  # torch.from_numpy warns on a read-only array


def test_a_python2_batch_as_the_official_files_hold_loads(tmp_path: Path) -> None:
    got = _load(tmp_path, PY2_ARRAY)
    assert np.array_equal(got, pickle.loads(PY2_ARRAY, encoding="latin1"))
    assert got.dtype == np.uint8 and got.tolist() == [[0, 1], [254, 255]]


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (pickle.dumps({"data": np.zeros(2, dtype=object)}), "refusing numpy dtype 'O8'"),
        (pickle.dumps({"data": np.zeros(2, dtype="U3")}), "refusing numpy dtype 'U3'"),
        (pickle.dumps({"data": np.zeros(2, dtype=[("a", "u1")])}), "refusing numpy dtype 'V1'"),
        (PY2_ARRAY.replace(b"K\x02K\x02\x86", b"K\x02K\x03\x86"), r"shape \(2, 3\) and dtype uint8 with 4 bytes"),
        (PY2_ARRAY.replace(b"K\x02K\x02\x86", b"K\x02J\xff\xff\xff\xff\x86"), r"shape \(2, -1\)"),
        (pickle.dumps(print), "refusing to load builtins.print"),
        (b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00bX\x05\x00\x00\x00bogus\x86R.", "other than a str to latin-1"),
        (b"\x80\x02cbuiltins\nobject\n)R}b.", "refusing to load builtins.object"),
        (b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x7f\x85R.", r"bytes\(\) with arguments"),  # 2 GB
    ],
    ids=["object", "str", "structured", "bytes-short", "negative-shape", "code", "codec", "object-build", "bytes-n"],
)
def test_anything_but_plain_arrays_is_refused(tmp_path: Path, blob: bytes, message: str) -> None:
    with pytest.raises(pickle.UnpicklingError, match=message):
        _load(tmp_path, blob)


def test_bytes_used_again_and_again_cannot_build_more_than_the_file_holds(tmp_path: Path) -> None:
    """One memoised byte string handed to the array builder many times: each call would copy it."""
    from numpy._core.numeric import _frombuffer

    chunk = bytes(1 << 20)

    class Again:
        def __reduce__(self) -> tuple:
            return _frombuffer, (chunk, np.dtype("u1"), (len(chunk),), "C")

    blob = pickle.dumps({"data": [Again() for _ in range(50)]}, protocol=4)  # the chunk is in the file once
    assert len(blob) < 2 * len(chunk)
    with pytest.raises(pickle.UnpicklingError, match="builds more data than it holds"):
        _load(tmp_path, blob)


def test_a_crafted_dtype_state_is_refused_where_numpy_would_crash(tmp_path: Path) -> None:
    """In a child process: were it to crash, the test fails instead of the test run."""
    path = tmp_path / "test_batch"
    path.write_bytes(CRASHES_NUMPY)
    code = f"from pathlib import Path\nfrom auditor import unpickle\nunpickle.load(Path({str(path)!r}))\n"
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, f"exit {done.returncode}"
    assert "UnpicklingError: unexpected numpy dtype state" in done.stderr


def test_corrupted_batches_load_or_raise_but_never_crash(tmp_path: Path) -> None:
    """Byte flips of a small batch: each loads or raises; in a child process, as a crash would
    end it (numpy's own unpickling crashed on such flips)."""
    rng = np.random.default_rng(0)
    batch = {"batch_label": "b", "labels": [1, 2, 3], "data": rng.integers(0, 256, (3, 12), dtype=np.uint8)}
    blobs = []
    for protocol in (2, 4):
        good = bytearray(pickle.dumps(batch, protocol=protocol))
        for _ in range(300):
            bad = good.copy()
            for pos in rng.integers(0, len(bad), 2):
                bad[pos] = int(rng.integers(0, 256))
            blobs.append(bytes(bad))
    (tmp_path / "blobs").write_bytes(pickle.dumps(blobs))
    code = (
        "import pickle, sys\nfrom pathlib import Path\nfrom auditor import unpickle\n"
        f"blobs = pickle.loads(Path({str(tmp_path / 'blobs')!r}).read_bytes())\n"
        f"path = Path({str(tmp_path / 'batch')!r})\nloaded = 0\n"
        "for blob in blobs:\n"
        "    path.write_bytes(blob)\n"
        "    try:\n        unpickle.load(path)\n        loaded += 1\n"
        "    except Exception:\n        pass\n"
        "print(loaded, len(blobs))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    loaded, total = map(int, done.stdout.split())
    assert total == 600 and 0 < loaded < total  # some flips hit only pixel bytes
