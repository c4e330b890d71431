import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from mcmc_landscape.errors import StoreError
from mcmc_landscape.storage.store import ChainReader, ChainWriter, repair


def _state(c, value=0.0):
    return {"position": np.full((c, 3), value), "iteration": np.int64(value)}


def _write(path, blocks, c=2, p=3, **kw):
    w = ChainWriter.create(path, "r", {"seed": 1}, c, p, _state(c), **kw)
    rng = np.random.default_rng(0)
    written = []
    for k in blocks:
        theta = rng.normal(size=(c, k, p))
        w.append(theta, theta[..., 0], theta[..., 1] > 0, _state(c, len(written) + 1))
        written.append(theta)
    return w, np.concatenate(written, axis=1)


def test_roundtrip_and_reading_api(tmp_path):
    w, theta = _write(tmp_path / "a.h5", [5, 7, 3])
    w.close()
    with ChainReader(tmp_path / "a.h5") as r:
        assert r.committed_draws == 15 and r.n_chains == 2 and r.n_params == 3
        assert r.config == {"seed": 1} and r.attrs["committed_draws"] == 15
        np.testing.assert_array_equal(r.get_chain(), theta)
        np.testing.assert_array_equal(r.get_chain(discard=4, thin=3), theta[:, 4::3])
        np.testing.assert_array_equal(r.get_chain(discard=2, flat=True), theta[:, 2:].reshape(-1, 3))
        np.testing.assert_array_equal(r.get_energy(), theta[..., 0])
        chunks = list(r.iter_chunks("theta", chunk_draws=4, discard=1))
        assert [s for s, _ in chunks] == [1, 5, 9, 13]
        np.testing.assert_array_equal(np.concatenate([b for _, b in chunks], axis=1), theta[:, 1:])
        assert int(r.state()["iteration"]) == 3


def test_uncommitted_draws_are_invisible_and_trimmed(tmp_path):
    path = tmp_path / "a.h5"
    w, theta = _write(path, [4, 4])
    # Simulate a crash after the data of a block was written but before its commit.
    d = w._g["theta"]
    d.resize(12, axis=1)
    d[:, 8:12] = 99.0
    w._f.flush()
    with ChainReader(path) as r:
        assert r.committed_draws == 8
        np.testing.assert_array_equal(r.get_chain(), theta)
    w._f.close()  # no clean close: the file stays flagged as open for SWMR write
    w2 = ChainWriter.open(path)
    assert w2.committed_draws == 8 and w2._g["theta"].shape[1] == 8
    w2.close()


KILLED_WRITER = """
import os, signal, sys
import numpy as np
from mcmc_landscape.storage.store import ChainWriter
w = ChainWriter.create(sys.argv[1], "r", {}, 2, 3, {"iteration": np.int64(0)})
w.append(np.ones((2, 4, 3)), np.ones((2, 4)), np.ones((2, 4), bool), {"iteration": np.int64(4)})
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_file_left_open_by_killed_writer_is_repaired(tmp_path):
    path = tmp_path / "a.h5"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r+")
    with ChainReader(path) as r:  # readable as it is
        np.testing.assert_array_equal(r.get_chain(), np.ones((2, 4, 3)))
    repair(path)
    with h5py.File(path, "r+"):
        pass
    w = ChainWriter.open(path)  # and appendable again
    w.append(np.zeros((2, 1, 3)), np.zeros((2, 1)), np.zeros((2, 1), bool), {"iteration": np.int64(5)})
    w.close()
    with ChainReader(path) as r:
        assert r.committed_draws == 5 and int(r.state()["iteration"]) == 5


def test_no_overwrite_without_force(tmp_path):
    path = tmp_path / "a.h5"
    path.write_bytes(b"precious")
    with pytest.raises(StoreError, match="already exists.*--force"):
        ChainWriter.create(path, "r", {}, 1, 1, _state(1))
    assert path.read_bytes() == b"precious"
    ChainWriter.create(path, "r", {}, 1, 3, _state(1), force=True).close()
    assert ChainReader(path).committed_draws == 0


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        ChainReader(tmp_path / "none.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    with pytest.raises(StoreError, match="not a readable HDF5"):
        ChainReader(bad)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(StoreError, match="not an mcmc-landscape chain file"):
        ChainReader(foreign)
    w, _ = _write(tmp_path / "good.h5", [2])
    w.close()
    with pytest.raises(StoreError, match="no run 'other'"):
        ChainReader(tmp_path / "good.h5", run="other")
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes((tmp_path / "good.h5").read_bytes()[:600])
    with pytest.raises(StoreError):
        ChainReader(truncated)


_DIE_AT = {
    # the moments a writer has the file open outside an append: the open itself, after open's trim, close's attribute
    "open": "f = store._open_for_write(path)",
    "trim": "w = store.ChainWriter.open(path)",
    "close": "w = store.ChainWriter.open(path); w._g.attrs.modify('committed_draws', 99); w._f.flush()",
}


@pytest.mark.parametrize("moment", list(_DIE_AT))
def test_a_writer_killed_while_opening_or_closing_leaves_a_readable_file(tmp_path, moment):
    """kill -9 at each moment a writer holds the file open outside an append leaves a file that readers open with
    its committed draws, and that the next writer repairs and appends to (a plain read-write open there would leave a
    file no reader can open until ``h5clear``: the CI failure of 2026-12-04, a resume killed while opening)."""
    path = tmp_path / "a.h5"
    w, theta = _write(path, [5, 7])
    w.close()
    code = f"import os; from pathlib import Path; from mcmc_landscape.storage import store; path = Path({str(path)!r}); " \
           f"{_DIE_AT[moment]}; os.kill(os.getpid(), {int(signal.SIGKILL)})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with ChainReader(path) as r:
        assert r.committed_draws == 12
        np.testing.assert_array_equal(r.get_chain(), theta)
    w = ChainWriter.open(path)
    w.append(theta[:, :2], theta[:, :2, 0], theta[:, :2, 1] > 0, _state(2, 9))
    w.close()
    with ChainReader(path) as r:
        assert r.committed_draws == 14 and r.attrs["committed_draws"] == 14
