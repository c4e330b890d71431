"""The store keeps pace: compression is a choice that changes no draw, chunks follow the block writes, and writing in a
thread (with blocks grown by time) gives the same file, bit for bit, as writing in the sampling thread."""

import h5py
import numpy as np
import pytest

from mcmc_landscape.runs import runner
from mcmc_landscape.storage.store import CHUNK_BYTES, ChainReader, ChainWriter, chunk_layout


def _blocks(c=3, p=4, sizes=(5, 7, 5)):
    rng = np.random.default_rng(1)
    return [rng.normal(size=(c, k, p)) for k in sizes]


@pytest.mark.parametrize("compression", ["none", "lzf", "gzip"])
def test_every_compression_stores_the_same_draws(tmp_path, compression):
    path = tmp_path / "a.h5"
    blocks = _blocks()
    w = ChainWriter.create(path, "r", {}, 3, 4, {"iteration": np.int64(0)}, compression=compression, block_draws=5)
    for i, b in enumerate(blocks):
        w.append(b, b[..., 0], b[..., 1] > 0, {"iteration": np.int64(i + 1)})
    w.close()
    with ChainReader(path) as r:
        np.testing.assert_array_equal(r.get_chain(), np.concatenate(blocks, axis=1))
        assert r.attrs["compression"] == compression and int(r.state()["iteration"]) == 3
    with h5py.File(path) as f:
        assert f["r/theta"].compression == {"none": None}.get(compression, compression)
        assert f["r/theta"].chunks == (3, 5, 4)


@pytest.mark.parametrize("chains,p,block", [(16, 18, 40000), (1024, 18, 100), (65536, 18, 1), (65536, 18, 30),
                                            (4, 150, 100), (1, 100_000, 3), (3, 4, None)])
def test_chunks_are_whole_chains_times_the_blocks_draws(chains, p, block):
    cc, cd = chunk_layout(chains, p, 8, block)
    assert 1 <= cc <= chains and cd >= 1
    if block is not None:
        assert cd <= block and (cd == block or block % cd > 0 or cd * p * 8 <= CHUNK_BYTES)
    # at most CHUNK_BYTES, unless one draw of one chain is already larger; and not needlessly small
    assert cc * cd * p * 8 <= max(CHUNK_BYTES, p * 8)
    assert cc == chains or (cc + 1) * cd * p * 8 > CHUNK_BYTES
    if block is not None and block * p * 8 <= CHUNK_BYTES:
        assert cd == block  # a block's draws of a chain fit: the chunk takes them all
    whole = runner._whole_chunks(10 * cd + 3, cd)  # a block of many chunks is cut to whole chunks ...
    assert whole % cd == 0 and 10 * cd <= whole <= 10 * cd + 3
    assert runner._whole_chunks(max(1, cd - 1), cd) == max(1, cd - 1)  # ... one smaller than a chunk stays


RW = {"chains": 3, "draws": 400, "warmup": 200, "seed": 11}
HMC = {"sampler": "hmc", "chains": 2, "draws": 40, "warmup": 20, "leapfrog": 4, "jitter": True, "seed": 4}


def _run(path, cfg, **kw):
    from mcmc_landscape.runs.sampling import start_run

    job = start_run(cfg, path, block_evals=kw.get("block_evals"), device="cpu")
    job.run(quiet=True, **kw)
    with ChainReader(path) as r:
        return r.get_chain(), r.get_energy(), r.get("accepted"), r.state()


@pytest.mark.parametrize("cfg", [RW, HMC], ids=["rw", "hmc"])
def test_threaded_writer_and_time_grown_blocks_give_the_same_file(tmp_path, cfg):
    direct = _run(tmp_path / "a.h5", cfg, block_evals=90, overlap=False)
    threaded = _run(tmp_path / "b.h5", cfg, block_evals=90, overlap=True)
    grown = _run(tmp_path / "c.h5", cfg, block_evals=None, overlap=True)
    for other in (threaded, grown):
        for x, y in zip(direct[:3], other[:3], strict=True):
            np.testing.assert_array_equal(x, y)
        for key in direct[3]:
            np.testing.assert_array_equal(direct[3][key], other[3][key])


class _FailingWriter:
    """Commits two blocks, then fails like a full disk."""

    committed_draws, chunk_draws, n_params, path = 0, 1, 18, "x.h5"

    def append(self, theta, energy, accepted, state):
        if self.committed_draws >= 2 * theta.shape[1] and theta.shape[1]:
            raise OSError("No space left on device")
        self.committed_draws += theta.shape[1]


def test_a_writer_thread_error_is_raised_in_the_sampling_thread(tmp_path):
    from mcmc_landscape.runs.sampling import start_run

    job = start_run({"chains": 2, "draws": 10_000, "warmup": 0, "seed": 1}, tmp_path / "a.h5")
    job.writer.close()
    with pytest.raises(OSError, match="No space left"):
        runner.run(job.kernel, _FailingWriter(), job.state, 10_000, block_evals=20, quiet=True, overlap=True)


def test_cli_compression_is_stored_kept_on_resume_and_verbose_prints_the_split(tmp_path, capsys):
    from landscape_cli.main import main

    path = tmp_path / "a.h5"
    base = ["sample", "--chains", "2", "--warmup", "20", "--seed", "2"]
    assert main([*base, "--draws", "60", "--compression", "gzip", "--out", str(path), "-v"]) == 0
    err = capsys.readouterr().err
    assert "sampler" in err and "waiting on the store" in err and "%" in err
    assert main(["sample", "--resume", str(path), "--draws", "90", "-q"]) == 0
    with ChainReader(path) as r:
        assert r.config["compression"] == "gzip" and r.committed_draws == 90
    with h5py.File(path) as f:
        assert f[r.run]["theta"].compression == "gzip"
    assert main(["sample", "--resume", str(path), "--draws", "99", "--compression", "lzf", "-q"]) == 2
    assert "--compression 'lzf' differs from the stored 'gzip'" in capsys.readouterr().err


def test_whole_chunk_writes_pad_the_last_chains_and_read_back_exactly(tmp_path):
    # p = 100 and blocks of 500 draws: chunks of 2 chains × 500 draws, so 5 chains end in a half-filled chunk; the
    # aligned blocks go in as raw chunks, the short last one through HDF5's selection, and a block appended after it
    # on resume starts inside that chunk, so HDF5 writes it around the draws already there
    rng = np.random.default_rng(3)
    blocks = [rng.normal(size=(5, k, 100)) for k in (500, 500, 137)]
    path = tmp_path / "a.h5"
    w = ChainWriter.create(path, "r", {}, 5, 100, {"iteration": np.int64(0)}, compression="none", block_draws=500)
    assert w._draw_sets[0].chunks == (2, 500, 100)
    for i, b in enumerate(blocks):
        w.append(b.astype(np.float32) if i == 1 else b, b[..., 0], b[..., 1] > 0, {"iteration": np.int64(i)})
    w.close()
    more = rng.normal(size=(5, 400, 100))
    with ChainWriter.open(path) as w:
        w.append(more, more[..., 0], more[..., 1] > 0, {"iteration": np.int64(3)})
    blocks.append(more)
    want = np.concatenate([blocks[0], blocks[1].astype(np.float32).astype(np.float64), *blocks[2:]], axis=1)
    with ChainReader(path) as r:
        np.testing.assert_array_equal(r.get_chain(), want)
        np.testing.assert_array_equal(r.get_energy(), np.concatenate([b[..., 0] for b in blocks], axis=1))
        np.testing.assert_array_equal(r.get("accepted"), np.concatenate([b[..., 1] > 0 for b in blocks], axis=1))


def test_float32_hmc_stores_theta_in_float32_and_float64_runs_in_float64(tmp_path):
    """Draws sampled in float32 are stored in float32 (float64 would add only zeros), unless --theta-dtype says."""
    from landscape_cli.main import main

    base = ["sample", "--sampler", "hmc", "--chains", "2", "--warmup", "10", "--draws", "8", "--leapfrog", "3",
            "--device", "cpu", "-q"]
    for name, extra, want in (("a", ["--dtype", "float32"], "float32"), ("b", [], "float64"),
                              ("c", ["--dtype", "float32", "--theta-dtype", "float64"], "float64")):
        assert main([*base, *extra, "--out", str(tmp_path / f"{name}.h5")]) == 0
        with ChainReader(tmp_path / f"{name}.h5") as r:
            theta = r.get_chain()
            assert theta.dtype == np.dtype(want) and theta.shape == (2, 8, 18) and np.isfinite(theta).all()
    assert main(["sample", "--resume", str(tmp_path / "a.h5"), "--draws", "12", "-q"]) == 0
    with ChainReader(tmp_path / "a.h5") as r:
        assert r.get_chain().dtype == np.float32 and r.committed_draws == 12
