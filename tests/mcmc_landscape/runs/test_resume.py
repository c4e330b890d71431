"""A run killed at random moments (SIGKILL or Ctrl-C) and resumed gives the draws of an uninterrupted run, bit for bit."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mcmc_landscape.storage.store import ChainReader

ARGS = ["sample", "--arch", "10,10", "--chains", "4", "--draws", "20000", "--warmup", "3000", "--seed", "7",
        "--block-evals", "400"]


def landscape(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "landscape_cli", "-q", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def read_all(path):
    with ChainReader(path) as r:
        return r.committed_draws, r.get_chain(), r.get_energy(), r.get("accepted"), r.state()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    proc = landscape(*ARGS, "--out", str(path))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return read_all(path)


def kill_and_resume(args, path, seed, kills, total, resume_extra=(), check=None):
    """Start ``args --out path``; ``kills`` times: wait until the file holds a random number of committed draws
    (a condition on the file, so a busy or an idle machine kills at the same points of the run; the writer is then
    inside its next block, which the kill cuts short), SIGKILL the run, call ``check()`` on the file and start it
    again (resuming where a file exists). Returns the kills that hit a live run, after the last run has finished
    successfully."""
    rng = random.Random(seed)
    targets = sorted(rng.randrange(0, int(0.9 * total)) for _ in range(kills))
    hits = 0
    proc = landscape(*args, "--out", str(path))
    for target in targets:
        _wait_for_commits(proc, path, target)
        hit = proc.poll() is None
        if hit:
            os.kill(proc.pid, signal.SIGKILL)
            hits += 1
        _, err = proc.communicate(timeout=300)
        assert hit or proc.returncode == 0, err  # a run that ended by itself must have ended well
        if check is not None and path.exists():
            check()
        again = ["sample", "--resume", str(path), *resume_extra] if path.exists() else [*args, "--out", str(path)]
        proc = landscape(*again)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return hits


def _wait_for_commits(proc, path, n, deadline_s=300.0):
    """True once the file holds ``n`` committed draws while ``proc`` runs; False if ``proc`` ended first. A run that
    neither commits nor ends within ``deadline_s`` fails the test instead of hanging it."""
    deadline = time.monotonic() + deadline_s
    while proc.poll() is None:
        assert time.monotonic() < deadline, f"no {n} committed draws in {path} after {deadline_s:.0f} s"
        try:
            with ChainReader(path) as r:
                if r.committed_draws >= n:
                    return True
        except Exception:  # not created yet, or caught mid-creation
            pass
        time.sleep(0.01)
    return False


def test_kill_minus_9_at_random_moments_then_resume(tmp_path, reference):
    path = tmp_path / "run.h5"

    def holds_a_prefix_of_the_reference():
        n, theta, energy, _, _ = read_all(path)  # the file always re-opens ...
        np.testing.assert_array_equal(theta, reference[1][:, :n])  # ... and holds a prefix of the reference
        np.testing.assert_array_equal(energy, reference[2][:, :n])

    assert kill_and_resume(ARGS, path, 1234, 5, 20000, check=holds_a_prefix_of_the_reference) >= 4
    n, theta, energy, accepted, state = read_all(path)
    assert n == 20000
    np.testing.assert_array_equal(theta, reference[1])
    np.testing.assert_array_equal(energy, reference[2])
    np.testing.assert_array_equal(accepted, reference[3])
    for key in ("position", "rng", "log_step", "n_accepted"):
        np.testing.assert_array_equal(state[key], reference[4][key])


def test_ctrl_c_keeps_draws_and_resumes(tmp_path, reference):
    path = tmp_path / "run.h5"
    proc = landscape(*ARGS, "--out", str(path))
    # wait (on the file, not the clock) until it is inside its sampling loop, its Ctrl-C handler installed
    assert _wait_for_commits(proc, path, 1), f"the run ended (status {proc.returncode}) before committing a draw"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "resume" in err and "Traceback" not in err
    n = read_all(path)[0]
    assert 1 <= n < 20000  # the draw waited for above is kept; the run was stopped before its end
    proc = landscape("sample", "--resume", str(path), "--draws", "20000")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    np.testing.assert_array_equal(read_all(path)[1], reference[1])


def test_extend_a_finished_run(tmp_path, reference):
    path = tmp_path / "run.h5"
    args = [a if a != "20000" else "12000" for a in ARGS]
    assert landscape(*args, "--out", str(path)).wait(timeout=300) == 0
    assert landscape("sample", "--resume", str(path), "--draws", "20000").wait(timeout=300) == 0
    np.testing.assert_array_equal(read_all(path)[1], reference[1])


HMC_ARGS = ["sample", "--sampler", "hmc", "--device", "cpu", "--chains", "4", "--draws", "5000", "--warmup", "100",
            "--leapfrog", "8", "--jitter", "--seed", "3", "--block-evals", "200"]


def test_hmc_killed_and_resumed_is_bit_identical_on_cpu(tmp_path):
    ref = tmp_path / "ref.h5"
    assert landscape(*HMC_ARGS, "--out", str(ref)).wait(timeout=300) == 0
    path = tmp_path / "run.h5"
    assert kill_and_resume(HMC_ARGS, path, 99, 3, 5000, resume_extra=("--device", "cpu")) >= 2
    a, b = read_all(ref), read_all(path)
    assert a[0] == b[0] == 5000
    for x, y in zip(a[1:4], b[1:4], strict=True):
        np.testing.assert_array_equal(x, y)
