"""``--cluster local:N | tcp://HOST:PORT``: run a command's independent tasks on Dask workers, past one machine.

Every command that has embarrassingly parallel work (sample's shards, dss sweep's pairs and levels, census's quench
batches) uses the same three pieces:

    add_cluster_arguments(parser)             # --cluster, --cluster-timeout
    with task_runner(args) as run_tasks:      # Dask only if --cluster was given; else a plain in-process loop
        for result in run_tasks(fn, [args_1, args_2, ...], gpu=False):   # run_tasks.workers: how many at once
            ...                               # results in the order they complete

A task is a pure function of plain data (a config and its piece) that writes its own file and returns a small
summary, so a task lost with its worker is simply run again (it resumes from what its file committed) and results
never travel through the scheduler as arrays. Without ``--cluster`` Dask is not imported at all.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mcmc_landscape.errors import LandscapeError

log = logging.getLogger("landscape")

#: how many times a task is retried when it raises (a worker that dies is handled by the scheduler on top of this)
TASK_RETRIES = 2

class ClusterError(LandscapeError):
    """A --cluster that cannot be used: bad address, unreachable scheduler, Dask not installed, no GPU worker."""


def cluster_spec(text: str) -> str:
    """An argparse type: ``local:N`` (N ≥ 1) or ``tcp://HOST:PORT`` (also ``tls://``)."""
    if re.fullmatch(r"local:[1-9]\d*", text) or re.fullmatch(r"(tcp|tls)://[^\s:/]+:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is neither local:N (N worker processes here) nor tcp://HOST:PORT "
                                     "(a running Dask scheduler)")


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cluster`` and ``--cluster-timeout`` (the command decides what its tasks are)."""
    parser.add_argument("--cluster", type=cluster_spec, metavar="local:N|tcp://HOST:PORT",
                        help="run the tasks on Dask: local:N starts N worker processes here; tcp://HOST:PORT joins a "
                             "running scheduler (needs the [dask] extra; default: this process, no Dask)")
    parser.add_argument("--cluster-timeout", type=float, default=20.0, metavar="SECONDS",
                        help="give up reaching the scheduler after this many seconds (default 20)")


def run_in_process(fn: Callable[..., Any], items: Sequence[Sequence[Any]], gpu: bool = False) -> Iterator[Any]:
    """The plain path: the tasks one after another in this process."""
    for item in items:
        yield fn(*item)


class TaskRunner:
    """``runner(fn, items, gpu=False)`` yields results as tasks complete; ``workers`` says how many run at once."""

    def __init__(self, client: Any = None):
        self.client = client
        self.workers = 1 if client is None else max(1, len(client.scheduler_info().get("workers", {})))

    def __call__(self, fn: Callable[..., Any], items: Sequence[Sequence[Any]], gpu: bool = False) -> Iterator[Any]:
        if self.client is None:
            return run_in_process(fn, items, gpu)
        return run_tasks(self.client, fn, items, gpu=gpu)


@contextmanager
def task_runner(args: argparse.Namespace) -> Iterator[TaskRunner]:
    """The command's :class:`TaskRunner`: on Dask when ``--cluster`` was given, else in this process (no Dask)."""
    spec = getattr(args, "cluster", None)
    if spec is None:
        yield TaskRunner()
        return
    with connect(spec, getattr(args, "cluster_timeout", 20.0), gpu=str(getattr(args, "device", "")) == "cuda") \
            as client:
        yield TaskRunner(client)


@contextmanager
def connect(spec: str, timeout: float = 20.0, gpu: bool = False) -> Iterator[Any]:
    """A Dask client on ``spec`` (``local:N`` starts a LocalCluster of N processes, closed on exit)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("--cluster needs Dask, which is not installed; pip install 'mcmc-landscape[dask]' or drop "
                           "--cluster.") from None
    cluster = None
    try:
        if spec.startswith("local:"):
            n = int(spec.split(":", 1)[1])
            threads = max(1, (os.cpu_count() or 1) // n)
            env = {k: str(threads) for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                   silence_logs=logging.ERROR, env=env, resources={"GPU": 1} if gpu else None)
            client = Client(cluster, timeout=timeout)
        else:
            client = Client(spec, timeout=timeout)
    except (OSError, TimeoutError):
        if cluster is not None:
            cluster.close()
        raise ClusterError(f"cannot reach the Dask scheduler at {spec} within {timeout:g} s; "
                           "start it (`dask scheduler`) and check the address, or drop --cluster.") from None
    try:
        log.info("dask: %d worker(s) at %s", len(client.scheduler_info().get("workers", {})), client.scheduler.address)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_tasks(client: Any, fn: Callable[..., Any], items: Sequence[Sequence[Any]], gpu: bool = False,
              retries: int = TASK_RETRIES) -> Iterator[Any]:
    """Submit ``fn(*item)`` for every item and yield results as they complete.

    A task that needs a GPU asks for the worker resource ``GPU=1`` (workers started with ``--resources GPU=1``);
    a task whose worker dies is rescheduled by Dask, one that raises is retried ``retries`` times, then its error is
    raised here (the remaining tasks are cancelled).
    """
    from distributed import as_completed

    resources = {"GPU": 1} if gpu else None
    if gpu and not any(w.get("resources", {}).get("GPU") for w in client.scheduler_info().get("workers", {}).values()):
        raise ClusterError("these tasks need a GPU but no Dask worker offers the resource GPU=1; start workers with "
                           "`dask worker ... --resources GPU=1`, or run with --device cpu.")
    futures = [client.submit(fn, *item, pure=False, retries=retries, resources=resources) for item in items]
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            if not future.done():
                future.cancel()
