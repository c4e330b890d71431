"""One dual averaging: the CPU samplers and the fused GPU kernel take their constants from samplers/adaptation.py,
so changing one there changes all, and a copy written again anywhere fails here."""

import math
import re
from pathlib import Path

import numba as nb
import numpy as np
import pytest

from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.samplers import adaptation, hmc_gpu

SAMPLERS = Path(adaptation.__file__).parent
#: The constants written as literals: γ = 0.05 in √m/γ, κ = 0.75 in m^-κ, t₀ = 10 in 1/(m + t₀), log 10 for μ.
LITERALS = [r"/\s*0\.05\b", r"\*\*\s*-\s*0\.75\b", r"m\s*\+\s*10\.0", r"log\(10\.0\)"]


@pytest.mark.parametrize("name", ["rw.py", "rw_torch.py", "hmc.py", "tempering.py", "hmc_gpu.py"])
def test_no_sampler_writes_the_constants_again(name):
    text = (SAMPLERS / name).read_text()
    found = [p for p in LITERALS if re.search(p, text)]
    assert not found, f"{name} writes dual averaging's constants itself ({found}); use samplers/adaptation.py"


def test_the_gpu_kernel_takes_the_constants_from_the_cpu_source(monkeypatch):
    spec = MLPSpec.from_string("2", n_in=2, n_out=2, activation="tanh")
    src = hmc_gpu.iterations_source(spec)
    for name in ("GAMMA", "T0", "KAPPA", "LOG10"):
        assert re.search(rf"\b{name}\b", src), f"the kernel source no longer uses {name}"
    assert not [p for p in LITERALS if re.search(p, src)]
    g = hmc_gpu.adaptation_globals(np.float32)
    assert (g["GAMMA"], g["T0"], g["KAPPA"]) == (adaptation.GAMMA, adaptation.T0, adaptation.KAPPA)
    assert g["LOG10"] == np.float32(math.log(10.0)) and isinstance(g["LOG10"], np.float32)
    monkeypatch.setattr(adaptation, "GAMMA", 0.1)  # a change at the source reaches the kernel's globals
    assert hmc_gpu.adaptation_globals(np.float64)["GAMMA"] == 0.1


def test_one_function_serves_python_numba_and_torch():
    import torch

    args = (7.0, 0.8, 0.3, 0.01, -1.0, math.log(0.5))
    expected = adaptation.dual_average(*args)
    w = 1.0 / (7.0 + 10.0)  # Hoffman and Gelman (2014), eq. (6), written out
    h = (1 - w) * 0.01 + w * (0.8 - 0.3)
    ls = math.log(0.5) - math.sqrt(7.0) / 0.05 * h
    assert expected == (ls, h, 7.0**-0.75 * ls + (1 - 7.0**-0.75) * -1.0)

    @nb.njit
    def compiled(m, target, a, hb, lsb, mu):
        return adaptation.dual_average(m, target, a, hb, lsb, mu)

    assert compiled(*args) == expected
    f64 = {"dtype": torch.float64}
    t = adaptation.dual_average(7.0, 0.8, torch.tensor([0.3], **f64), torch.tensor([0.01], **f64),
                                torch.tensor([-1.0], **f64), torch.tensor([math.log(0.5)], **f64))
    assert [float(v) for v in t] == list(expected)
