"""Drive a sampler kernel block by block into the chain store: warm-up, blocks of draws, progress, Ctrl-C, resume.

This is the only place where sampling meets files. A kernel is any object with ``run_block(state, n_draws,
max_warmup_steps) -> (state, theta, energy, accepted)``, ``warmup_left(state)``, ``state_arrays(state)``,
``state_from_arrays(arrays)``, ``step_cost()`` and ``summary(state)``. Every block is committed before the next starts,
so an interrupted run loses at most the blocks in flight, and blocks of any size give the same draws.

Writing overlaps sampling: a writer thread commits block k (through a queue of one) while the kernel samples block k+1,
so the wall time is about the larger of the two rather than their sum (torch and h5py's I/O let go of the GIL while
they work). The writer commits blocks in order, each atomically, so ``kill -9`` still leaves the last commit and a
resume is still bit-identical; Ctrl-C lets the writer finish every block already sampled. Block sizes: given as
energy evaluations per block, or (``block_evals=None``) grown from 2e6 until a block takes about a second, so a fast
sampler (a GPU) does not pay a state commit every few milliseconds. Draw blocks are whole multiples of the store's
chunk draws, so blocks fill whole chunks. ``log.debug`` reports the split of wall time: sampler, store, other.
"""

from __future__ import annotations

import logging
import queue
import signal
import sys
import threading
import time
from typing import Any

import numpy as np

from mcmc_landscape.errors import LandscapeError
from mcmc_landscape.storage.store import ChainWriter

log = logging.getLogger(__name__)


class Interrupted(LandscapeError):
    """Ctrl-C: the run stopped cleanly after its last committed block."""


#: With ``block_evals=None``: the first block's evaluations, the sampling time a block is grown to, and the most bytes of
#: draws a block may hold in memory.
AUTO_START_EVALS = 2_000_000
AUTO_BLOCK_SECONDS = 1.0
MAX_BLOCK_BYTES = 256 << 20


def draws_per_block(block_evals: int, n_chains: int, step_cost: int) -> int:
    """Kept draws per block when a block may spend ``block_evals`` energy evaluations."""
    return max(1, int(block_evals) // (n_chains * step_cost))


def run(kernel: Any, writer: ChainWriter, state: Any, total_draws: int, *, block_evals: int | None = 1_000_000,
        quiet: bool = False, overlap: bool = True) -> Any:
    """Advance ``state`` until ``writer`` holds ``total_draws`` committed draws; returns the final state.

    ``block_evals=None`` sizes blocks by time (see the module docstring); ``overlap`` writes in a thread."""
    n_chains = len(kernel.state_arrays(state)["energy"])
    draw_bytes = n_chains * writer.n_params * 8
    evals = AUTO_START_EVALS if block_evals is None else int(block_evals)
    stop = {"flag": False}

    def on_sigint(signum: int, frame: Any) -> None:
        if stop["flag"]:
            raise KeyboardInterrupt
        stop["flag"] = True
        log.warning("interrupt received: finishing the current block (press Ctrl-C again to abort at once)")

    previous = signal.signal(signal.SIGINT, on_sigint) if _is_main_thread() else None
    progress = _Progress(quiet, kernel.warmup_left(state), total_draws, writer.committed_draws, n_chains)
    sink = _ThreadedSink(writer) if overlap else _DirectSink(writer)
    clock = {"sampler": 0.0, "store": 0.0}
    t_start = time.perf_counter()
    sampled = writer.committed_draws
    try:
        while kernel.warmup_left(state) > 0 or sampled < total_draws:
            warm_block = max(1, evals // n_chains)
            draw_block = _whole_chunks(draws_per_block(evals, n_chains, kernel.step_cost()), writer.chunk_draws)
            # a block is either warm-up (at most warm_block steps, no draws) or draws (after warm-up)
            n = 0 if kernel.warmup_left(state) > 0 else min(draw_block, total_draws - sampled)
            t0 = time.perf_counter()
            state, theta, energy, accepted = kernel.run_block(state, n, warm_block)
            t1 = time.perf_counter()
            sink.put(theta, energy, accepted, kernel.state_arrays(state))
            clock["sampler"] += t1 - t0
            clock["store"] += time.perf_counter() - t1
            sampled += n
            if block_evals is None and t1 - t0 < AUTO_BLOCK_SECONDS / 2 and draw_block * draw_bytes * 2 <= MAX_BLOCK_BYTES:
                evals *= 2
            progress.update(kernel, state, writer.committed_draws)
            if stop["flag"]:
                break
        t1 = time.perf_counter()
        sink.finish()
        clock["store"] += time.perf_counter() - t1
        progress.update(kernel, state, writer.committed_draws, final=True)
        if stop["flag"]:
            raise Interrupted(_interrupt_message(writer))
    finally:
        sink.abort()
        progress.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        _log_split(clock, time.perf_counter() - t_start, sink)
    return state


def _whole_chunks(draws: int, chunk_draws: int) -> int:
    """Round a block of draws down to whole chunks (a block smaller than a chunk stays as it is)."""
    return draws - draws % chunk_draws if draws > chunk_draws else draws


def _log_split(clock: dict[str, float], wall: float, sink: Any) -> None:
    other = max(0.0, wall - clock["sampler"] - clock["store"])
    pct = (lambda t: 100 * t / wall) if wall > 0 else (lambda t: 0.0)
    log.debug("wall %.2f s: sampler %.2f s (%.0f%%), waiting on the store %.2f s (%.0f%%), other %.2f s (%.0f%%); "
              "the store wrote for %.2f s%s", wall, clock["sampler"], pct(clock["sampler"]), clock["store"],
              pct(clock["store"]), other, pct(other), sink.busy,
              " in its own thread, overlapped with sampling" if isinstance(sink, _ThreadedSink) else "")


class _DirectSink:
    """Commit each block in the sampling thread."""

    def __init__(self, writer: ChainWriter):
        self._writer = writer
        self.busy = 0.0

    def put(self, theta: Any, energy: Any, accepted: Any, state: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        self._writer.append(theta, energy, accepted, state)
        self.busy += time.perf_counter() - t0

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        pass


class _ThreadedSink:
    """Commit blocks in a writer thread, in order, with at most one block waiting: memory stays bounded by three
    blocks (one sampled, one waiting, one being written). An error in the writer is raised in the sampling thread."""

    def __init__(self, writer: ChainWriter):
        self._writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._dropped = threading.Event()
        self.busy = 0.0
        self._thread = threading.Thread(target=self._work, name="chain-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._dropped.is_set() or self._error is not None:
                return
            t0 = time.perf_counter()
            try:
                self._writer.append(*item)
            except BaseException as exc:  # handed to the sampling thread
                self._error = exc
            self.busy += time.perf_counter() - t0

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, theta: Any, energy: Any, accepted: Any, state: dict[str, Any]) -> None:
        self._raise()
        # The kernel may reuse its state's memory for the next block: hand the writer a copy (one draw's worth).
        state = {k: np.array(v, copy=True) for k, v in state.items()}
        while True:
            try:
                self._queue.put((theta, energy, accepted, state), timeout=0.1)
                return
            except queue.Full:
                self._raise()

    def finish(self) -> None:
        """Wait until every block handed over is committed."""
        while self._thread.is_alive():  # a writer that stopped on an error takes nothing more
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop after the block being written (blocks still waiting are dropped: they were never committed)."""
        if self._thread.is_alive():
            self._dropped.set()
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
            self._thread.join()


def _interrupt_message(writer: ChainWriter) -> str:
    return (f"interrupted after {writer.committed_draws} committed draws, all kept in {str(writer.path)!r}; "
            f"continue with `landscape sample --resume {writer.path}`.")


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _clock(seconds: float) -> str:
    """``h:mm:ss`` (``-:--:--`` when not known)."""
    if not np.isfinite(seconds) or seconds < 0:
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class _Progress:
    """Progress of a run (warm-up, then draws) with draws/s, acceptance, step size, elapsed and time left; silent when
    quiet. On a terminal a rich bar; elsewhere (a log, a pipe) one plain line per block, at most one every
    ``min_interval`` seconds (the first and last always), since a bar written to a file is cut to ellipses."""

    def __init__(self, quiet: bool, warmup_left: int, total: int, done: int, n_chains: int, stream: Any = None,
                 min_interval: float = 1.0):
        self._bar = None
        self._lines = None
        self._chains = n_chains
        self._t0 = time.perf_counter()
        self._done0 = done
        self._total = total
        self._warm_total = warmup_left
        self._min_interval = min_interval
        self._last_line = -np.inf
        self._last_text = ""
        if quiet:
            return
        stream = sys.stderr if stream is None else stream
        if not (_is_terminal(stream) and _is_terminal(sys.stdout)):  # `make run > log` too: no bar in between lines
            self._lines = stream
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[stats]}"),
                             TimeElapsedColumn(), TimeRemainingColumn(), console=Console(file=stream),
                             transient=False)
        self._bar.start()
        self._warm = self._bar.add_task("warm-up", total=warmup_left, rate="", stats="") if warmup_left else None
        self._task = self._bar.add_task("draws", total=total, completed=done, rate="", stats="")

    def update(self, kernel: Any, state: Any, done: int, final: bool = False) -> None:
        if self._bar is None and self._lines is None:
            return
        s = kernel.summary(state)
        nonfinite = f" non-finite {s['nonfinite']}" if s.get("nonfinite") else ""
        elapsed = time.perf_counter() - self._t0
        rate = (done - self._done0) * self._chains / elapsed if elapsed > 0 else 0.0
        if self._lines is not None:
            self._line(kernel.warmup_left(state), done, rate, s, nonfinite, elapsed, final)
            return
        stats = f"acc {s['acceptance']:.3f} step {s['step']:.3g}{nonfinite}"
        if self._warm is not None:
            self._bar.update(self._warm, completed=self._warm_total - kernel.warmup_left(state), stats=stats)
        self._bar.update(self._task, completed=done, rate=f"{rate:,.0f} draws/s (all chains)", stats=stats)

    def _line(self, warmup_left: int, done: int, rate: float, s: dict[str, Any], nonfinite: str, elapsed: float,
              final: bool) -> None:
        """One plain line: phase, steps or draws done of total, draws/s, acceptance, step, elapsed, left."""
        if warmup_left > 0:
            phase, count, total = "warm-up", self._warm_total - warmup_left, self._warm_total
            left = elapsed * warmup_left / count if count > 0 else np.nan
        else:
            phase, count, total = "draws", done, self._total
            new = done - self._done0
            left = elapsed * (self._total - done) / new if new > 0 else (0.0 if done >= self._total else np.nan)
        text = (f"{phase} {count}/{total} per chain, {rate:,.0f} draws/s, acc {s['acceptance']:.3f}, "
                f"step {s['step']:.3g}{nonfinite}, elapsed {_clock(elapsed)}, left {_clock(left)}")
        now = time.perf_counter()
        if text == self._last_text or (not final and now - self._last_line < self._min_interval
                                       and self._last_text and count < total):
            return
        self._last_line, self._last_text = now, text
        print(text, file=self._lines, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
