"""One writer per file: an OS-level lock on a lock file beside the file, held for the writer's lifetime.

Two writers appending to one file corrupt it, and a writer cannot tell a file left "open for write" by a killed writer
from one a live writer is using. The lock tells them apart: it is an ``flock`` on ``<file>.lock`` (through
``filelock``), which the kernel drops the moment its holder dies, even by ``kill -9``. So a file whose lock can be taken
has no live writer, and may be repaired; a file whose lock is held is refused with one sentence. The lock is reentrant
within a process (one lock object per lock file), so a store may take it around every save while a command holds it
for its whole run. The chain store, the DSS string store and the census store all use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from mcmc_landscape.errors import StoreError


class FileBusy(StoreError):
    """Another live process is writing the file."""


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file that guards ``path``: ``<path>.lock`` beside it (left in place; only the OS lock on it counts)."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def _write_pid(fd: int) -> None:
    """Record the holder's process id in the lock file, so that a refused writer can say who holds it."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(lock_file: Path, patience: float = 2.0) -> str:
    """Who holds the lock, as the holder wrote it. A new holder writes its id just after it takes the lock, and a
    released lock file is left empty, so an empty file or a dead process's id means "look again" for a moment."""
    import time

    deadline = time.monotonic() + patience
    while True:
        try:
            pid = lock_file.read_text().strip()
        except OSError:
            pid = ""
        if pid.isdigit() and _alive(int(pid)):
            return f"process {pid}"
        if time.monotonic() > deadline:
            return "another process"
        time.sleep(0.01)


class WriterLock:
    """The writer's lock on ``path``: ``acquire()`` takes it at once or raises :class:`FileBusy`; ``release()`` drops it.

    ``what`` names the file in the refusal ("chain file", "string file") and ``how`` says what to do next.
    """

    def __init__(self, path: str | os.PathLike, what: str = "file", how: str = "wait for it to finish or stop it"):
        self.path = Path(path)
        self.lock_file = lock_path(self.path)
        self._what, self._how = what, how
        # is_singleton: one object per lock file in this process, so taking it again here is reentrant; no soft
        # fallback, because a marker file would outlive a writer killed with kill -9.
        self._lock = FileLock(self.lock_file, thread_local=False, is_singleton=True, fallback_to_soft=False,
                              on_acquired=_write_pid)
        self._held = 0

    def acquire(self) -> WriterLock:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise FileBusy(f"{self._what} {str(self.path)!r} is being written by {_holder(self.lock_file)} (it holds "
                           f"{str(self.lock_file)!r}); {self._how}, then run the command again.") from None
        self._held += 1
        return self

    def release(self) -> None:
        if self._held:
            self._held -= 1
            if self._lock.lock_counter == 1:  # the last hold in this process: leave no holder's id behind
                with contextlib.suppress(OSError):
                    os.truncate(self.lock_file, 0)
            self._lock.release()

    @property
    def held(self) -> bool:
        return self._held > 0

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike, what: str = "file",
                how: str = "wait for it to finish or stop it") -> Iterator[WriterLock]:
    """Hold the writer's lock on ``path`` for the ``with`` block; :class:`FileBusy` at once if a live process holds it."""
    lock = WriterLock(path, what, how)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
