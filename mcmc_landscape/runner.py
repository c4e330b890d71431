"""Drive a sampler kernel block by block into the chain store: warm-up, blocks of draws, progress, Ctrl-C, resume.

This is the only place where sampling meets files. A kernel is any object with ``run_block(state, n_draws,
max_warmup_steps) -> (state, theta, energy, accepted)``, ``warmup_left(state)``, ``state_arrays(state)``,
``state_from_arrays(arrays)``, ``step_cost()`` and ``summary(state)``. Every block is committed before the next starts,
so an interrupted run loses at most the block in flight, and blocks of any size give the same draws.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from .errors import LandscapeError
from .store import ChainWriter

log = logging.getLogger(__name__)


class Interrupted(LandscapeError):
    """Ctrl-C: the run stopped cleanly after its last committed block."""


def run(kernel: Any, writer: ChainWriter, state: Any, total_draws: int, *, block_evals: int = 1_000_000,
        quiet: bool = False) -> Any:
    """Advance ``state`` until ``writer`` holds ``total_draws`` committed draws; returns the final state."""
    n_chains = len(kernel.state_arrays(state)["energy"])
    warm_block = max(1, block_evals // n_chains)
    draw_block = max(1, block_evals // (n_chains * kernel.step_cost()))
    stop = {"flag": False}

    def on_sigint(signum: int, frame: Any) -> None:
        if stop["flag"]:
            raise KeyboardInterrupt
        stop["flag"] = True
        log.warning("interrupt received: finishing the current block (press Ctrl-C again to abort at once)")

    previous = signal.signal(signal.SIGINT, on_sigint) if _is_main_thread() else None
    progress = _Progress(quiet, kernel.warmup_left(state), total_draws, writer.committed_draws, n_chains)
    try:
        while kernel.warmup_left(state) > 0 or writer.committed_draws < total_draws:
            # a block is either warm-up (at most warm_block steps, no draws) or draws (after warm-up)
            n = 0 if kernel.warmup_left(state) > 0 else min(draw_block, total_draws - writer.committed_draws)
            state, theta, energy, accepted = kernel.run_block(state, n, warm_block)
            writer.append(theta, energy, accepted, kernel.state_arrays(state))
            progress.update(kernel, state, writer.committed_draws)
            if stop["flag"]:
                raise Interrupted(_interrupt_message(writer))
    finally:
        progress.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return state


def _interrupt_message(writer: ChainWriter) -> str:
    return (f"interrupted after {writer.committed_draws} committed draws, all kept in {str(writer.path)!r}; "
            f"continue with `landscape sample --resume {writer.path}`.")


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class _Progress:
    """A rich progress bar (warm-up, then draws) with draws/s, acceptance and time left; silent when quiet."""

    def __init__(self, quiet: bool, warmup_left: int, total: int, done: int, n_chains: int):
        self._bar = None
        self._chains = n_chains
        self._t0 = time.perf_counter()
        self._done0 = done
        if quiet:
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
                             TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                             transient=False)
        self._bar.start()
        self._warm = self._bar.add_task("warm-up", total=warmup_left, rate="", stats="") if warmup_left else None
        self._warm_total = warmup_left
        self._task = self._bar.add_task("draws", total=total, completed=done, rate="", stats="")

    def update(self, kernel: Any, state: Any, done: int) -> None:
        if self._bar is None:
            return
        s = kernel.summary(state)
        stats = f"acc {s['acceptance']:.3f} step {s['step']:.3g}" + (
            f" non-finite {s['nonfinite']}" if s.get("nonfinite") else "")
        if self._warm is not None:
            self._bar.update(self._warm, completed=self._warm_total - kernel.warmup_left(state), stats=stats)
        elapsed = time.perf_counter() - self._t0
        rate = (done - self._done0) * self._chains / elapsed if elapsed > 0 else 0.0
        self._bar.update(self._task, completed=done, rate=f"{rate:,.0f} draws/s (all chains)", stats=stats)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
