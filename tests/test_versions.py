"""pyproject.toml states the lowest versions that really work: every API the code uses exists in the installed
versions, and no declared minimum lies below the release that introduced an API the source uses."""

import importlib.metadata
import inspect
import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from paths import ROOT

SOURCE = "\n".join(p.read_text() for top in ("mcmc_landscape", "analysis", "dss", "landscape_cli")
                   for p in (ROOT / top).rglob("*.py"))

#: (distribution, the first version with the API, a pattern that finds its use in the source or None: always needed)
INTRODUCED = [
    ("numpy", "2.0", r"np\.trapezoid"),
    ("numpy", "2.0", None),  # h5py, torch, scipy and matplotlib below are the NumPy 2 builds
    ("scikit-learn", "1.5", r"covariance_eigh"),
    ("networkx", "3.4", r"node_link_data\([^)]*edges="),
    ("torch", "2.3", None),
    ("scipy", "1.13", None),
    ("h5py", "3.11", None),
    ("matplotlib", "3.9", None),
    ("numba", "0.60", None),
]


def declared() -> dict[str, Version]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        req = Requirement(dep)
        lows = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
        if lows:
            out[req.name] = max(lows)
    return out


@pytest.mark.parametrize("dist, first, pattern", INTRODUCED)
def test_no_declared_minimum_lies_below_an_api_the_code_uses(dist, first, pattern):
    if pattern is not None and not re.search(pattern, SOURCE):
        pytest.skip(f"{pattern} is not used")
    assert declared()[dist] >= Version(first), f"{dist} must be >= {first} in pyproject.toml"


def test_installed_versions_meet_the_declared_minimums():
    for dist, low in declared().items():
        assert Version(importlib.metadata.version(dist)) >= low, dist


def test_the_apis_the_code_relies_on_exist():
    import h5py
    import matplotlib
    import networkx as nx
    import numba
    import numpy as np
    import torch
    from matplotlib.figure import Figure
    from sklearn.decomposition import PCA

    assert hasattr(np, "trapezoid")
    PCA(n_components=1, svd_solver="covariance_eigh").fit(np.random.default_rng(0).normal(size=(8, 3)))
    assert "edges" in inspect.signature(nx.node_link_data).parameters
    assert "locking" in inspect.signature(h5py.File.__init__).parameters
    assert hasattr(h5py.h5f, "ACC_SWMR_WRITE") and hasattr(h5py.h5p.PropFAID, "set_file_locking")   # the store's open
    assert hasattr(numba, "parallel_chunksize") and hasattr(torch.func, "functional_call")
    assert "tab10" in matplotlib.colormaps and hasattr(Figure, "subplots")
