"""Start, resume and run a sampling job: config → data → energy → kernel → store → runner.

The CLI's ``sample`` and the experiments (rotation) both come through here, so a run started either way is the same run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mcmc_landscape.data.datasets import data_digest  # noqa: F401  (re-exported: sampling.data_digest)
from mcmc_landscape.errors import ResumeMismatch, SpecError
from mcmc_landscape.runs.config import (  # noqa: F401  (re-exported: the settings' names, where the CLI found them)
    MLP_ONLY,
    RUN_KEYS,
    SAMPLE_DEFAULTS,
    SAMPLER_DEFAULTS,
    SAMPLER_ONLY,
    TUNING_KEYS,
    RunConfig,
)

log = logging.getLogger("mcmc_landscape.runs.sampling")

#: A block of draws held in memory before it is written stays under this many bytes (large models: few draws a block).
BLOCK_BYTES = 256 * 2**20


class RunKind(Protocol):
    """One kind of run: how it settles a new run's config and data, rebuilds the kernel of a stored run, and checks a
    resume's ``--data``. :class:`~.mlp_sampling.MLPRun` (an MLP on points) and :class:`~.zoo_sampling.ZooRun` (a model
    of the zoo, or a user's module) are the two; :func:`run_kind` chooses, so start and resume below never branch on it.
    """

    def settle(self, cfg: RunConfig, explicit: dict[str, Any], device: str,
               data_dir: Any) -> tuple[RunConfig, Any, Any, Any]: ...

    def kernel(self, cfg: RunConfig, x: Any, y: Any, device: str) -> tuple[Any, Any]: ...

    def data_differences(self, stored: RunConfig, data: str) -> list[str]: ...


def run_kind(model: str | None) -> RunKind:
    """The kind of run with this ``model`` setting: a model of the zoo or a user's module where set, else an MLP."""
    if model is None:
        from mcmc_landscape.runs.mlp_sampling import MLPRun

        return MLPRun()
    from mcmc_landscape.runs.zoo_sampling import ZooRun

    return ZooRun()


@dataclass
class Job:
    """A run ready to advance: its config, kernel, current state and open writer."""

    cfg: RunConfig
    spec: Any
    kernel: Any
    state: Any
    writer: Any
    total: int

    def run(self, block_evals: int | None = None, quiet: bool = False, overlap: bool = True) -> Any:
        """Advance to ``total`` committed draws, then close the file (also on error or Ctrl-C). ``block_evals=None``:
        blocks sized by time; ``overlap``: the store writes in its own thread (see :mod:`.runner`)."""
        from mcmc_landscape.runs import runner

        t0 = time.perf_counter()
        done_before = self.writer.committed_draws
        cap = block_evals_cap(self.cfg, self.kernel)
        if block_evals is not None or cap < runner.AUTO_START_EVALS:  # a large model: few draws a block from the start
            block_evals = min(block_evals or cap, cap)
        try:
            self.state = runner.run(self.kernel, self.writer, self.state, self.total, block_evals=block_evals,
                                    quiet=quiet, overlap=overlap)
        finally:
            self.writer.close()
        dt = time.perf_counter() - t0
        n_new = (self.writer.committed_draws - done_before) * self.cfg.chains
        summ = self.kernel.summary(self.state)
        log.info("wrote %d draws (%d per chain) to %s in %.1f s: %.0f draws/s, acceptance %.3f, %d non-finite "
                 "proposals; next: landscape diagnose %s", n_new, self.writer.committed_draws, self.writer.path, dt,
                 n_new / dt if dt > 0 else 0.0, summ["acceptance"], summ["nonfinite"], self.writer.path)
        return self.state


def block_evals_cap(cfg: RunConfig, kernel: Any) -> int:
    """Evaluations per block such that a block of draws (chains × draws × p in float64) stays under
    :data:`BLOCK_BYTES`: a large model commits a few draws at a time instead of holding gigabytes."""
    chains, p = int(cfg.chains), int(cfg.n_params or 1)
    draws = max(1, BLOCK_BYTES // (chains * p * 8))
    return draws * chains * kernel.step_cost()


def start_run(explicit: dict[str, Any], out: str | Path, run: str | None = None, force: bool = False,
              device: str = "auto", block_evals: int | None = None, data_dir: str | Path | None = None) -> Job:
    """A new run from the settings given (the rest from the defaults), written to ``out``; ``block_evals`` (as
    :meth:`Job.run` will get it) shapes the store's chunks. With ``model`` set, a model of the zoo on real images
    read from ``data_dir`` (see :mod:`mcmc_landscape.runs.zoo_sampling`)."""
    from mcmc_landscape.runs.runner import AUTO_START_EVALS, draws_per_block
    from mcmc_landscape.storage.store import ChainWriter

    cfg, ds, spec, kernel = new_config(explicit, device, data_dir)
    state = kernel.init(cfg.chains, cfg.seed)
    evals = min(block_evals or AUTO_START_EVALS, block_evals_cap(cfg, kernel))
    block_draws = draws_per_block(evals, cfg.chains, kernel.step_cost())
    writer = ChainWriter.create(out, run or Path(out).stem, cfg.to_json(), cfg.chains, spec.n_params,
                                kernel.state_arrays(state), extra={"data/x": ds.x, "data/y": ds.y}, force=force,
                                compression=cfg.compression, block_draws=block_draws,
                                theta_dtype=cfg.theta_dtype or "float64")
    log.info("%s; %d chains × %d draws of %s → %s", spec.describe(), cfg.chains, cfg.draws, cfg.sampler, out)
    return Job(cfg, spec, kernel, state, writer, int(cfg.draws))


def new_config(explicit: dict[str, Any], device: str = "auto",
               data_dir: str | Path | None = None) -> tuple[RunConfig, Any, Any, Any]:
    """The full config of a new run from the settings given (the rest from the defaults): (cfg, data, spec, kernel);
    ``data`` has ``x`` and ``y``, the arrays stored with the run."""
    kind = run_kind(explicit.get("model"))
    cfg = RunConfig.settle(explicit)
    cfg, ds, spec, kernel = kind.settle(cfg, explicit, device, data_dir)
    return cfg.replace(n_params=spec.n_params), ds, spec, kernel


def check_resume(path: str | Path, stored: RunConfig, explicit: dict[str, Any]) -> None:
    """Refuse a resume whose settings in ``explicit`` differ from the ``stored`` config, naming each difference."""
    diffs = stored.differences(explicit)
    if explicit.get("data") is not None:
        diffs += run_kind(stored.model).data_differences(stored, explicit["data"])
    if diffs:
        raise ResumeMismatch(f"cannot resume {str(path)!r}: " + "; ".join(diffs)
                             + "; drop those flags, or start a new run with --out.")


def resume_run(path: str | Path, explicit: dict[str, Any], draws: int | None = None, run: str | None = None,
               device: str = "auto", tuning: dict[str, Any] | None = None) -> Job:
    """Continue the run stored in ``path``; settings in ``explicit`` must match the stored ones (``tuning``, the
    energy's chunk sizes, may differ). Refused at once (:class:`~mcmc_landscape.storage.locking.FileBusy`) while another
    process writes the file."""
    from mcmc_landscape.storage.locking import WriterLock

    held = WriterLock(path, "chain file", "wait for that run to finish or stop it").acquire()  # before reading it
    try:
        return _resume_run(path, explicit, draws, run, device, tuning)  # the writer takes its own hold on the lock
    finally:
        held.release()


def _resume_run(path: str | Path, explicit: dict[str, Any], draws: int | None, run: str | None, device: str,
                tuning: dict[str, Any] | None) -> Job:
    from mcmc_landscape.storage.store import ChainReader, ChainWriter

    with ChainReader(path, run) as reader:
        stored = RunConfig.from_json(reader.config)
        x, y = reader.extra("data/x"), reader.extra("data/y")
        state_arrays = reader.state()
        run_name = reader.run
    check_resume(path, stored, explicit)
    total = draws if draws is not None else int(stored.draws)
    spec, kernel = run_kind(stored.model).kernel(stored.replace(**(tuning or {})), x, y, device)
    state = kernel.state_from_arrays(state_arrays)
    writer = ChainWriter.open(path, run_name)
    if total < writer.committed_draws:
        writer.close()
        raise SpecError(f"the run already holds {writer.committed_draws} draws per chain, more than "
                        f"--draws {total}; give a larger total to extend it.")
    log.info("resuming %s at %d of %d draws (%s)", path, writer.committed_draws, total, spec.describe())
    return Job(stored, spec, kernel, state, writer, total)
