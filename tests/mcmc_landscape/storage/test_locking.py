"""One writer per chain file: a second writer is refused with one sentence while the first lives, and the lock dies
with its holder (kill -9), so the file can be repaired and resumed afterwards."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mcmc_landscape.storage.locking import FileBusy, WriterLock, lock_path, writer_lock
from mcmc_landscape.storage.store import ChainReader, ChainWriter, repair


def landscape(*args):
    return subprocess.Popen([sys.executable, "-m", "landscape_cli", "-q", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


HOLD = """
import sys
from mcmc_landscape.storage.locking import WriterLock
lock = WriterLock(sys.argv[1], "chain file").acquire()
print("held", flush=True)
sys.stdin.read()  # hold until the test closes our stdin (or kills us)
"""


@pytest.fixture
def holder(tmp_path):
    """Another live process holding the writer's lock on tmp_path / 'a.h5'."""
    path = tmp_path / "a.h5"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"  # waits on the condition, not the clock
    yield path, proc
    proc.kill()
    proc.wait()


def _state(c):
    return {"position": np.zeros((c, 3)), "iteration": np.int64(0)}


def test_a_live_writer_blocks_open_create_force_and_repair(tmp_path, holder):
    path, proc = holder
    other = tmp_path / "b.h5"
    ChainWriter.create(other, "r", {}, 2, 3, _state(2)).close()
    os.replace(other, path)  # a valid chain file, whose lock the other process holds
    with pytest.raises(FileBusy, match=rf"is being written by process {proc.pid} .*wait for that run to finish"):
        ChainWriter.open(path)
    with pytest.raises(FileBusy):
        ChainWriter.create(path, "r", {}, 2, 3, _state(2), force=True)  # --force does not override a live writer
    with pytest.raises(FileBusy):
        repair(path)
    with ChainReader(path) as r:  # reading is never refused
        assert r.committed_draws == 0
    proc.kill()
    proc.wait()  # the OS drops the lock with its holder
    w = ChainWriter.open(path)
    again = WriterLock(path).acquire()  # reentrant within one process
    assert lock_path(path).exists() and again.held
    again.release()
    w.close()


def test_lock_is_reentrant_in_a_process_and_released_at_close(tmp_path):
    path = tmp_path / "a.h5"
    w = ChainWriter.create(path, "r", {}, 2, 3, _state(2))
    check = [sys.executable, "-c", "import sys; from mcmc_landscape.storage.locking import WriterLock; "
             "WriterLock(sys.argv[1]).acquire()", str(path)]
    assert subprocess.run(check, capture_output=True).returncode != 0  # held while the writer is open
    w.close()
    assert subprocess.run(check, capture_output=True).returncode == 0  # and let go at close
    with writer_lock(path) as lk, writer_lock(path):
        assert lk.held


def wait_for_commits(path, n, deadline_s=300.0):
    """Until the file holds at least ``n`` committed draws (a condition; the deadline only stops a hung test)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with ChainReader(path) as r:
                if r.committed_draws >= n:
                    return r.committed_draws
        except Exception:  # caught mid-repair or mid-commit: look again
            pass
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} committed draws in {deadline_s:.0f} s")


def test_two_resumes_at_once_one_runs_the_other_is_refused_and_kill_9_frees_the_file(tmp_path):
    path = tmp_path / "run.h5"
    from mcmc_landscape.runs.sampling import start_run

    start_run({"chains": 2, "draws": 200, "warmup": 50, "seed": 5}, path).run(quiet=True)
    resume = ("sample", "--resume", str(path), "--draws", "1000000000", "--block-evals", "200")
    procs = [landscape(*resume), landscape(*resume)]
    try:
        deadline = time.monotonic() + 300
        while all(p.poll() is None for p in procs):  # the loser gives up as soon as it meets the lock
            assert time.monotonic() < deadline, "neither resume was refused"
            time.sleep(0.05)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        _, err = loser.communicate()
        assert loser.returncode == 2, err
        assert err.strip().count("\n") == 0 and "Traceback" not in err
        assert f"is being written by process {winner.pid}" in err and "run the command again" in err
        assert winner.poll() is None  # the winner is untouched by the refused one and goes on writing
        n = wait_for_commits(path, 400)
        os.kill(winner.pid, signal.SIGKILL)
        winner.communicate()
        with ChainReader(path) as r:  # left flagged "open for write" by a dead writer, still readable
            n = r.committed_draws
            theta = r.get_chain()
        assert n >= 400
        later = landscape("sample", "--resume", str(path), "--draws", str(n + 50))
        _, err = later.communicate(timeout=300)
        assert later.returncode == 0, err  # the lock died with its holder: repaired and resumed
        with ChainReader(path) as r:
            assert r.committed_draws == n + 50
            np.testing.assert_array_equal(r.get_chain()[:, :n], theta)
    finally:  # a failed assertion must not leave a writer of 1e9 draws running
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


def test_the_same_lock_guards_dss_string_files(tmp_path, holder, capsys):
    from dss.store import save_string
    from landscape_cli.main import main

    path, proc = holder
    with pytest.raises(FileBusy, match="string file .* is being written by process"):
        save_string(path, None, {})  # refused before anything is written
    assert not path.exists()
    assert main(["dss", "connect", "--resume", str(path)]) == 2  # refused before the file is even read
    err = capsys.readouterr().err
    assert f"string file {str(path)!r} is being written by process {proc.pid}" in err


READ_AND_HOLD = """
import sys
from mcmc_landscape.storage.store import ChainReader
r = ChainReader(sys.argv[1])
print(r.committed_draws, flush=True)
sys.stdin.read()  # keep the file open until the test closes our stdin
"""


def test_a_reader_in_another_process_never_stops_a_writer_from_opening_appending_and_closing(tmp_path):
    # was: HDF5's own read lock made a resume fail ("unable to lock file") while `diagnose` or a poller read the file
    path = tmp_path / "a.h5"
    ChainWriter.create(path, "r", {}, 2, 3, _state(2)).close()
    reader = subprocess.Popen([sys.executable, "-c", READ_AND_HOLD, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "0"  # the reader has the file open now
        with ChainWriter.open(path) as w:
            w.append(np.ones((2, 4, 3)), np.ones((2, 4)), np.ones((2, 4), bool), _state(2))
        with ChainReader(path) as r:
            assert r.committed_draws == 4
    finally:
        reader.kill()
        reader.wait()
