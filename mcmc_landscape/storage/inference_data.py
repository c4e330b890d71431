"""A chain file as an ArviZ InferenceData: in memory (:func:`to_inference_data`) or written to netCDF out of core
(:func:`export_netcdf`), so every Bayesian tool can read our chains.

Groups, as ArviZ lays them out:

- ``posterior``: ``theta`` with dims (chain, draw, param), ``param`` named by the flat layout (``W1[0,1]``, ``b2[0]``
  for an MLP; ``conv1.weight[0,0,1,2]`` for a module), the run config (JSON) in its attrs;
- ``sample_stats``: ``energy`` (U), ``lp`` (= -U/T), ``accepted``, ``step_size`` (the step after warm-up, fixed while
  draws are kept; absent for emcee) and, for replica exchange, ``swap_accept_rate`` (chain, rung_pair) beside the
  ladder's ``temperatures`` in the attrs;
- ``observed_data``: the data ``x`` and ``y`` stored with the run.

netCDF (h5netcdf, what ``az.from_netcdf`` reads by default) or zarr (format 3, an optional dependency).

Out of core: θ is copied in blocks of at most ``block_bytes`` (a few chains × a few draws × p), so a 15 GB convnet
file is exported with a few hundred MB of memory: the arrays are created at full size and filled block by block,
never through an in-memory xarray Dataset.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape import __version__
from mcmc_landscape.errors import SpecError, StoreError

#: Bytes of θ read and written at once, by default.
BLOCK_BYTES = 256 * 2**20
#: Size of a chunk of θ in the netCDF file, about.
NC_CHUNK_BYTES = 1 << 20

NameFn = Callable[[int, int], list[str]]


def _segments(entries: list[tuple[str, tuple[int, ...]]]) -> NameFn:
    """Names of flat coordinates ``start:stop`` for tensors laid out one after another, each row-major."""
    offsets = np.cumsum([0] + [int(np.prod(shape)) for _, shape in entries])

    def names(start: int, stop: int) -> list[str]:
        out: list[str] = []
        for (name, shape), lo, hi in zip(entries, offsets[:-1], offsets[1:], strict=True):
            a, b = max(start, lo), min(stop, hi)
            if a >= b:
                continue
            idx = np.unravel_index(np.arange(a - lo, b - lo), shape)
            out.extend(f"{name}[{','.join(map(str, ix))}]" for ix in zip(*idx, strict=True))
        return out

    return names


def parameter_names(cfg: dict[str, Any], p: int, module_layout: Callable[[dict[str, Any]], Any] | None = None
                    ) -> NameFn:
    """``names(start, stop)``: the names of θ's coordinates ``start:stop`` for the run ``cfg``. An MLP's come from its
    stored widths; a module's (zoo or user model) from ``module_layout(cfg)`` (a ``FlatLayout`` or None; the front
    door passes :func:`mcmc_landscape.user_model.stored_module_layout`, since storage knows no model); ``theta[k]``
    where there is none."""
    if "model" not in cfg and cfg.get("widths"):
        w = [int(v) for v in cfg["widths"]]
        entries = []
        for i in range(len(w) - 1):
            entries += [(f"W{i + 1}", (w[i], w[i + 1])), (f"b{i + 1}", (w[i + 1],))]
        names = _segments(entries)
    else:
        layout = module_layout(cfg) if module_layout is not None else None
        if layout is None:
            return lambda start, stop: [f"theta[{k}]" for k in range(start, stop)]
        names = _segments(list(zip(layout.names, layout.shapes, strict=True)))
    if len(names(p - 1, p)) != 1 or names(p, p + 1):
        raise StoreError(f"the stored config's layout does not have the file's {p} parameters; the file is damaged.")
    return names


def _rows(reader: Any, discard: int, thin: int) -> range:
    if discard < 0 or thin < 1:
        raise SpecError(f"discard must be ≥ 0 and thin ≥ 1, got discard={discard}, thin={thin}.")
    rows = range(min(discard, reader.committed_draws), reader.committed_draws, thin)
    if len(rows) == 0:
        raise SpecError(f"{str(reader.path)!r} holds {reader.committed_draws} draws per chain; none is left after "
                        f"discarding {discard}.")
    return rows


def _stats(reader: Any, rows: range) -> tuple[dict[str, tuple[tuple[str, ...], np.ndarray]], dict[str, Any]]:
    """sample_stats variables as {name: (dims, array)} and the group's attrs."""
    sel = slice(rows.start, rows.stop, rows.step)
    energy = reader.read_block("energy", 0, reader.committed_draws)[:, sel]
    accepted = reader.read_block("accepted", 0, reader.committed_draws)[:, sel]
    temperature = float(reader.config.get("temperature", 1.0))
    out: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
        "energy": (("chain", "draw"), energy),
        "lp": (("chain", "draw"), -energy / temperature),
        "accepted": (("chain", "draw"), accepted.astype(bool)),
    }
    attrs: dict[str, Any] = {"temperature": temperature}
    state = reader.state()
    if "log_step" in state:
        log_step = np.asarray(state["log_step"], dtype=np.float64)
        step = np.exp(log_step[:, 0] if log_step.ndim == 2 else log_step)  # replica exchange: rung 0 is the run
        out["step_size"] = (("chain", "draw"), np.repeat(step[:, None], len(rows), axis=1))
    if "swap_tried" in state:
        tried = np.asarray(state["swap_tried"], dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["swap_accept_rate"] = (("chain", "rung_pair"), np.asarray(state["swap_accepted"]) / tried)
        attrs["temperatures"] = np.asarray(state["temperatures"], dtype=np.float64) * temperature
    return out, attrs


def _observed(reader: Any) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    out = {}
    for name in ("x", "y"):
        try:
            arr = np.asarray(reader.extra(f"data/{name}"))
        except KeyError:
            continue
        out[name] = (("obs", *(f"{name}_dim_{i}" for i in range(1, arr.ndim))), arr)
    return out


def _attrs(reader: Any) -> dict[str, Any]:
    return {"created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "inference_library": "mcmc-landscape", "inference_library_version": __version__,
            "source_file": str(reader.path), "run": reader.run, "config": json.dumps(reader.config, sort_keys=True)}


def _blocks(n_chains: int, n_draws: int, p: int, itemsize: int, block_bytes: int
            ) -> list[tuple[slice, slice]]:
    """(chains, draws) slices covering the output, each at most ``block_bytes`` of θ (one chain × one draw at least)."""
    per_draw = p * itemsize
    chains = max(1, min(n_chains, block_bytes // max(per_draw, 1)))
    draws = max(1, min(n_draws, block_bytes // max(chains * per_draw, 1)))
    return [(slice(c, min(c + chains, n_chains)), slice(d, min(d + draws, n_draws)))
            for c in range(0, n_chains, chains) for d in range(0, n_draws, draws)]


def export_netcdf(reader: Any, out: str | os.PathLike, **kw: Any) -> Path:
    """Write the run of ``reader`` (a :class:`~mcmc_landscape.storage.store.ChainReader`) to ``out`` as an
    InferenceData netCDF file (``az.from_netcdf`` reads it); see :func:`_export` for the keywords."""
    return _export(reader, Path(out), _NetCDF, **kw)


def export_zarr(reader: Any, out: str | os.PathLike, **kw: Any) -> Path:
    """Write the run to the folder ``out`` as an InferenceData zarr store (format 3; read it with
    ``az.InferenceData.from_datatree(xr.open_datatree(out, engine="zarr"))``: ArviZ 0.2x's own ``from_zarr`` takes
    zarr 2 only); see :func:`_export` for the keywords."""
    try:
        import zarr  # noqa: F401
    except ImportError:
        raise SpecError("--to zarr needs the zarr package; install it (pip install 'mcmc-landscape[zarr]') or use "
                        "--to netcdf.") from None
    return _export(reader, Path(out), _Zarr, **kw)


def _export(reader: Any, out: Path, backend: type, *, discard: int = 0, thin: int = 1,
            block_bytes: int = BLOCK_BYTES, compress: bool = False, force: bool = False,
            module_layout: Callable[[dict[str, Any]], Any] | None = None) -> Path:
    """θ copied in blocks of at most ``block_bytes``. Refuses an existing ``out`` unless ``force``; writes beside it
    and renames into place, so an interrupted export leaves no half file."""
    if out.exists() and not force:
        raise SpecError(f"{str(out)!r} already exists; pass --force to overwrite it.")
    rows = _rows(reader, discard, thin)
    n_chains, p, dtype = reader.n_chains, reader.n_params, reader.theta_dtype
    names = parameter_names(reader.config, p, module_layout)
    stats, stats_attrs = _stats(reader, rows)
    draws = np.asarray(rows, dtype=np.int64)
    tmp = out.with_name(out.name + ".partial")
    _remove(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with backend(tmp) as w:
            w.attrs(None, _attrs(reader))
            post = w.group("posterior", {"chain": n_chains, "draw": len(rows), "param": p})
            w.variable(post, "chain", ("chain",), data=np.arange(n_chains))
            w.variable(post, "draw", ("draw",), data=draws)
            param = w.variable(post, "param", ("param",), dtype=str, shape=(p,))
            step = max(1, block_bytes // 256)  # 3.3M names of a convnet are ~300 MB as one NumPy array
            for start in range(0, p, step):
                param[start : min(start + step, p)] = np.array(names(start, min(start + step, p)), dtype=object)
            cp = min(p, max(1, NC_CHUNK_BYTES // (16 * dtype.itemsize)))
            cd = max(1, min(len(rows), NC_CHUNK_BYTES // (cp * dtype.itemsize)))
            var = w.variable(post, "theta", ("chain", "draw", "param"), dtype=dtype, shape=(n_chains, len(rows), p),
                             chunks=(1, cd, cp), compress=compress)
            for cs, ds in _blocks(n_chains, len(rows), p, dtype.itemsize, block_bytes):
                src = slice(rows[ds.start], rows[ds.stop - 1] + 1, rows.step)
                var[cs, ds] = reader.read_slab("theta", cs, src)
            w.attrs(post, {"config": json.dumps(reader.config, sort_keys=True)})
            _write_group(w, "sample_stats", stats, stats_attrs, {"chain": np.arange(n_chains), "draw": draws})
            _write_group(w, "observed_data", _observed(reader), {}, {})
        _remove(out)
        os.replace(tmp, out)
    except BaseException:
        _remove(tmp)
        raise
    return out


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _write_group(w: Any, name: str, variables: dict[str, tuple[tuple[str, ...], np.ndarray]],
                 attrs: dict[str, Any], coords: dict[str, np.ndarray]) -> None:
    sizes = {c: len(v) for c, v in coords.items()}
    for dnames, arr in variables.values():
        sizes.update({d: n for d, n in zip(dnames, arr.shape, strict=True)})
    g = w.group(name, sizes)
    for cname, values in coords.items():
        w.variable(g, cname, (cname,), data=values)
    for vname, (dnames, arr) in variables.items():
        w.variable(g, vname, dnames, data=arr)
    w.attrs(g, attrs)


class _NetCDF:
    """netCDF-4 groups through h5netcdf, the layout ``az.from_netcdf`` reads."""

    def __init__(self, path: Path) -> None:
        import h5netcdf

        self.f = h5netcdf.File(path, "w")

    def group(self, name: str, sizes: dict[str, int]) -> Any:
        g = self.f.create_group(name)
        g.dimensions = sizes
        return g

    def variable(self, g: Any, name: str, dims: tuple[str, ...], data: Any = None, dtype: Any = None,
                 shape: Any = None, chunks: Any = None, compress: bool = False) -> Any:
        import h5py

        if dtype is str:
            dtype = h5py.string_dtype()
        opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if compress else {}
        boolean = data is not None and np.asarray(data).dtype == bool
        if boolean:  # netCDF has no booleans: int8 marked as xarray marks it, read back as bool
            data = np.asarray(data, dtype=np.int8)
        var = g.create_variable(name, dims, data=data, dtype=dtype, chunks=chunks, **opts)
        if boolean:
            var.attrs["dtype"] = "bool"
        return var

    def attrs(self, g: Any, attrs: dict[str, Any]) -> None:
        for k, v in attrs.items():
            (self.f if g is None else g).attrs[k] = v

    def __enter__(self) -> _NetCDF:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


class _Zarr:
    """A zarr (format 3) store: one group per InferenceData group, dims as each array's ``dimension_names``."""

    def __init__(self, path: Path) -> None:
        import zarr

        self.path = path
        self.root = zarr.open_group(str(path), mode="w", zarr_format=3)

    def group(self, name: str, sizes: dict[str, int]) -> Any:
        return self.root.create_group(name)

    def variable(self, g: Any, name: str, dims: tuple[str, ...], data: Any = None, dtype: Any = None,
                 shape: Any = None, chunks: Any = None, compress: bool = False) -> Any:
        if data is not None:
            data = np.asarray(data)
            dtype, shape = data.dtype, data.shape
            if data.dtype.kind in "US":
                dtype = str
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr 3 warns that variable-length strings are not in its spec yet
            arr = g.create_array(name, shape=shape, dtype=dtype, chunks=chunks or "auto", dimension_names=list(dims),
                                 compressors="auto" if compress else None)
        if data is not None and data.size:
            arr[...] = data
        return arr

    def attrs(self, g: Any, attrs: dict[str, Any]) -> None:
        target = self.root if g is None else g
        target.attrs.update({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in attrs.items()})

    def __enter__(self) -> _Zarr:
        return self

    def __exit__(self, *exc: object) -> None:
        import zarr

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "consolidated metadata is not part of the format 3 specification"
            zarr.consolidate_metadata(str(self.path))


def to_inference_data(reader: Any, *, discard: int = 0, thin: int = 1,
                      module_layout: Callable[[dict[str, Any]], Any] | None = None) -> Any:
    """The run of ``reader`` as an in-memory ArviZ InferenceData, laid out as :func:`export_netcdf` writes it (θ is
    loaded whole: for a run larger than memory, export to a file and open it lazily with ``az.from_netcdf``)."""
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz 0.23 announces its 1.0 refactor on import
        import arviz as az

    rows = _rows(reader, discard, thin)
    p = reader.n_params
    coords = {"chain": np.arange(reader.n_chains), "draw": np.asarray(rows, dtype=np.int64)}
    theta = reader.get_chain(discard, thin)
    post = xr.Dataset({"theta": (("chain", "draw", "param"), theta)},
                      coords={**coords, "param": np.array(parameter_names(reader.config, p, module_layout)(0, p))},
                      attrs={"config": json.dumps(reader.config, sort_keys=True)})
    stats, stats_attrs = _stats(reader, rows)
    sample_stats = xr.Dataset({k: v for k, v in stats.items()}, coords=coords, attrs=stats_attrs)
    observed = xr.Dataset({k: v for k, v in _observed(reader).items()})
    return az.InferenceData(posterior=post, sample_stats=sample_stats, observed_data=observed, attrs=_attrs(reader))
