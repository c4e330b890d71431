"""A run's settings as one typed value, from the command line to the file and back.

:meth:`RunConfig.settle` turns the settings a user gave (the CLI's flags, an experiment's plan) into the full config
of a new run, defaults filled in and checked once; :meth:`RunConfig.to_json` is what the chain file stores as the
run's ``config`` attribute (the same keys as before this type existed, so files written earlier and later read the
same); :meth:`RunConfig.from_json` reads any stored config back, keys it does not know kept aside in ``extra``; and
:meth:`RunConfig.differences` compares a resume's flags with the stored run field by field, naming each field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from mcmc_landscape.errors import SpecError

#: Settings that define a run; a resume must match every one of them.
RUN_KEYS = ("arch", "activation", "data", "angle", "temperature", "box", "sampler", "chains", "seed", "warmup",
            "thin", "target_accept", "initial_step", "leapfrog", "jitter", "trajectory", "dtype", "stretch",
            "compression", "model", "width", "n_train", "theta_dtype", "temps", "t_max", "box_transform")
#: Settings that shape memory only (how the energy is chunked): stored, but a resume may change them.
TUNING_KEYS = ("chain_chunk", "example_chunk")
#: MLP-only settings, refused with --model.
MLP_ONLY = ("arch", "activation", "angle")
#: Zoo-only settings, refused without --model.
ZOO_ONLY = ("width", "n_train")
SAMPLE_DEFAULTS: dict[str, Any] = {
    "arch": "2,2", "activation": "relu", "data": "points10", "angle": 0.0, "temperature": 1.0, "box": 10.0,
    "sampler": "rw", "chains": 16, "seed": 0, "warmup": 2000, "thin": 1, "draws": 20000, "compression": "none",
}
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {
    "rw": {"target_accept": 0.234, "initial_step": 0.1},
    "hmc": {"target_accept": 0.8, "initial_step": 0.05, "leapfrog": 16, "jitter": False, "trajectory": "fixed",
            "dtype": "float64", "warmup": 1000},
    "emcee": {"stretch": 2.0, "warmup": 1000, "chains": 36},
    "pt": {"target_accept": 0.234, "initial_step": 0.1, "temps": 5, "t_max": 20.0},
}
#: Settings that only some samplers take, and which.
SAMPLER_ONLY = {"target_accept": ("rw", "hmc", "pt"), "initial_step": ("rw", "hmc", "pt"), "leapfrog": ("hmc",),
                "jitter": ("hmc",), "trajectory": ("hmc",), "dtype": ("hmc",), "stretch": ("emcee",), "temps": ("pt",),
                "t_max": ("pt",), "box_transform": ("rw", "pt")}
#: Settings of a zoo run (beside the sampler's) and their defaults.
ZOO_DEFAULTS: dict[str, Any] = {"n_train": 1000, "width": 1.0, "init": "pytorch"}


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run; ``None`` where a setting does not apply (another sampler's, an MLP's for a zoo model).

    The last group is what starting the run found out (the data's digest, the layer widths, the number of
    parameters, a zoo model's options, the shard plan); ``extra`` holds stored keys this version does not know."""

    sampler: str = "rw"
    chains: int = 16
    seed: int = 0
    draws: int = 20000
    warmup: int = 2000
    thin: int = 1
    temperature: float = 1.0
    box: float = 10.0
    data: str = "points10"
    compression: str = "none"
    arch: str | None = None
    activation: str | None = None
    angle: float | None = None
    target_accept: float | None = None
    initial_step: float | None = None
    leapfrog: int | None = None
    jitter: bool | None = None
    trajectory: str | None = None  # hmc: "fixed" or "chees"; runs stored before ChEES read as fixed
    dtype: str | None = None
    stretch: float | None = None
    temps: int | None = None
    t_max: float | None = None
    box_transform: str | None = None  # rw/pt: sample under the box carried back by this transform (samplers/region.py)
    model: str | None = None
    width: float | None = None
    n_train: int | None = None
    init: str | None = None
    theta_dtype: str | None = None
    chain_chunk: int | None = None
    example_chunk: int | None = None
    data_sha256: str | None = None
    widths: tuple[int, ...] | None = None
    n_params: int | None = None
    model_options: dict[str, Any] | None = None
    shards: int | None = None
    shard: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def settle(cls, explicit: dict[str, Any]) -> RunConfig:
        """The config of a new run from the settings given, the rest from the defaults; refused (one sentence)
        where a setting does not apply to the sampler or model chosen, or is out of range."""
        known = {f.name for f in fields(cls)} - {"extra"}
        unknown = sorted(set(explicit) - known)
        if unknown:
            raise SpecError(f"unknown run setting {unknown[0]!r}; known are {', '.join(sorted(known))}.")
        sampler = explicit.get("sampler", SAMPLE_DEFAULTS["sampler"])
        if sampler not in SAMPLER_DEFAULTS:
            raise SpecError(f"--sampler {sampler!r} is not known; choose one of {', '.join(SAMPLER_DEFAULTS)}.")
        foreign = [k for k, owners in SAMPLER_ONLY.items() if k in explicit and sampler not in owners
                   and not (k == "dtype" and "model" in explicit)]
        if foreign:
            owners = " or ".join(SAMPLER_ONLY[foreign[0]])
            raise SpecError(f"--{foreign[0].replace('_', '-')} applies to --sampler {owners} only; drop it or choose "
                            f"{owners}.")
        values = {**SAMPLE_DEFAULTS, **SAMPLER_DEFAULTS[sampler], **explicit}
        if "model" in explicit:
            given = [k for k in MLP_ONLY if k in explicit]
            if given:
                raise SpecError(f"--{given[0]} describes an MLP; drop it with --model (use --width for a zoo model's "
                                "size).")
            if sampler not in ("hmc", "rw"):
                raise SpecError(f"--sampler {sampler} cannot sample a zoo model; use --sampler hmc or rw.")
            for k in MLP_ONLY:
                values.pop(k, None)
            if ":" in str(explicit["model"]):  # a user's factory (module:callable) on a user's arrays
                for k in ZOO_ONLY:
                    if k in explicit:
                        raise SpecError(f"--{k.replace('_', '-')} applies to zoo models only; drop it with --model "
                                        "module:factory.")
                if "data" not in explicit:
                    raise SpecError(f"--model {explicit['model']} needs --data FILE.npz holding arrays x and y.")
            else:
                values.update({k: v for k, v in ZOO_DEFAULTS.items() if k not in explicit})
                if "data" not in explicit:
                    values["data"] = "cifar10" if str(values["model"]).startswith("cifar") else "mnist"
        else:
            for k in ZOO_ONLY:
                if k in explicit:
                    raise SpecError(f"--{k.replace('_', '-')} applies to zoo models only; add --model or drop it.")
        if values.get("target_accept") is not None and not values["target_accept"] < 1:
            raise SpecError(f"--target-accept must be below 1, got {values['target_accept']}.")
        return cls(**values)

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> RunConfig:
        """A stored config, as any version wrote it: known keys to fields, the others kept in ``extra``."""
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in stored.items() if k in known}
        if values.get("widths") is not None:
            values["widths"] = tuple(int(w) for w in values["widths"])
        return cls(**values, extra={k: v for k, v in stored.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        """The config as the chain file stores it: the settings that apply (``None`` left out), plus ``extra``."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out = {k: (list(v) if k == "widths" else v) for k, v in out.items() if v is not None}
        return {**out, **self.extra}

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def differences(self, explicit: dict[str, Any], skip: tuple[str, ...] = ("data", "draws")) -> list[str]:
        """One phrase per setting in ``explicit`` that differs from this (stored) config, naming the flag."""
        mine = self.to_json()
        return [f"--{k.replace('_', '-')} {v!r} differs from the stored {mine.get(k)!r}"
                for k, v in explicit.items() if k not in skip and mine.get(k) != v]

    def differing_fields(self, other: RunConfig, skip: tuple[str, ...] = ("draws",)) -> list[str]:
        """The names of the fields (and stored extras) in which two configs differ."""
        a, b = self.to_json(), other.to_json()
        return sorted(k for k in set(a) | set(b) if k not in skip and a.get(k) != b.get(k))
