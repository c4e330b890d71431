"""``landscape export``: a chain file as an ArviZ InferenceData (netCDF, or zarr), written out of core."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from .common import nonneg_int, positive_int

log = logging.getLogger("landscape")


def add_arguments(g: argparse.ArgumentParser) -> None:
    g.description = ("Write a chain file as an ArviZ InferenceData: posterior θ (chain, draw, param) with named "
                     "parameters, sample_stats (energy, lp = -U/T, accepted, step size, swap rates), observed_data "
                     "and the run config; θ is copied in blocks, so a file larger than memory streams.")
    g.add_argument("file", type=Path, help="chain file written by `landscape sample`")
    g.add_argument("--to", choices=["netcdf", "zarr"], required=True, help="output format")
    g.add_argument("out", type=Path, help="file (netcdf) or folder (zarr) to write")
    g.add_argument("--run", help="run inside the file (needed only if it holds several)")
    g.add_argument("--discard", type=nonneg_int, default=0, help="draws per chain to drop first (default 0)")
    g.add_argument("--thin", type=positive_int, default=1, help="keep every n-th draw (default 1)")
    g.add_argument("--memory-mb", type=positive_int, default=256,
                   help="largest block of θ held in memory at once, in MB (default 256)")
    g.add_argument("--compress", action="store_true", help="gzip θ in the output (smaller, slower)")
    g.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def run(args: argparse.Namespace) -> int:
    from mcmc_landscape.storage.inference_data import export_netcdf, export_zarr
    from mcmc_landscape.storage.store import ChainReader
    from mcmc_landscape.user_model import stored_module_layout

    t0 = time.perf_counter()
    write = export_netcdf if args.to == "netcdf" else export_zarr
    with ChainReader(args.file, args.run) as reader:
        out = write(reader, args.out, discard=args.discard, thin=args.thin, block_bytes=args.memory_mb * 2**20,
                    compress=args.compress, force=args.force, module_layout=stored_module_layout)
        shape = (reader.n_chains, len(range(min(args.discard, reader.committed_draws), reader.committed_draws,
                                            args.thin)), reader.n_params)
    opener = "az.from_netcdf" if args.to == "netcdf" else "xr.open_datatree(..., engine='zarr')"
    print(f"wrote {out} ({args.to}): posterior θ {shape[0]} chains × {shape[1]} draws × {shape[2]} parameters in "
          f"{time.perf_counter() - t0:.1f} s; open it with {opener}")
    return 0
