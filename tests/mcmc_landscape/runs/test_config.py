"""RunConfig: settled once from the settings given, stored as the config JSON, read back from any version's file,
and compared field by field on resume."""

import pytest

from mcmc_landscape.errors import SpecError
from mcmc_landscape.runs.config import SAMPLE_DEFAULTS, SAMPLER_DEFAULTS, RunConfig

# A config as the chain files written before RunConfig stored it (an rw run on points10), plus a key from the future.
OLD_FILE = {"arch": "2,2", "activation": "relu", "data": "points10", "angle": 0.0, "temperature": 1.0, "box": 10.0,
            "sampler": "rw", "chains": 4, "seed": 3, "warmup": 2000, "thin": 1, "draws": 100, "compression": "none",
            "target_accept": 0.234, "initial_step": 0.1, "data_sha256": "ab" * 32, "widths": [2, 2, 2, 2],
            "n_params": 18, "someday": {"x": 1}}


def test_settle_fills_the_defaults_of_the_sampler_and_nothing_foreign():
    cfg = RunConfig.settle({"sampler": "hmc", "chains": 3})
    stored = cfg.to_json()
    assert stored == {**SAMPLE_DEFAULTS, **SAMPLER_DEFAULTS["hmc"], "sampler": "hmc", "chains": 3}
    assert "stretch" not in stored and "temps" not in stored and cfg.stretch is None


@pytest.mark.parametrize("explicit, word", [
    ({"sampler": "rw", "leapfrog": 4}, "--leapfrog applies to --sampler hmc only"),
    ({"width": 0.5}, "--width applies to zoo models only"),
    ({"model": "mnist-convnet", "arch": "3"}, "--arch describes an MLP"),
    ({"model": "mnist-convnet", "sampler": "pt"}, "cannot sample a zoo model"),
    ({"target_accept": 1.0}, "--target-accept must be below 1"),
    ({"chain": 3}, "unknown run setting 'chain'"),
])
def test_settle_refuses_settings_that_do_not_apply(explicit, word):
    with pytest.raises(SpecError, match=word):
        RunConfig.settle(explicit)


def test_a_zoo_run_drops_the_mlp_settings_and_takes_its_data_from_the_model():
    stored = RunConfig.settle({"model": "cifar10-convnet", "sampler": "hmc"}).to_json()
    assert stored["data"] == "cifar10" and stored["n_train"] == 1000 and stored["init"] == "pytorch"
    assert not {"arch", "activation", "angle"} & set(stored)


def test_an_old_file_reads_back_unchanged_with_unknown_keys_kept():
    cfg = RunConfig.from_json(OLD_FILE)
    assert cfg.widths == (2, 2, 2, 2) and cfg.extra == {"someday": {"x": 1}} and cfg.stretch is None
    assert cfg.to_json() == OLD_FILE
    assert RunConfig.from_json(cfg.to_json()) == cfg


def test_differences_name_each_differing_field_and_skip_equal_ones():
    cfg = RunConfig.from_json(OLD_FILE)
    diffs = cfg.differences({"temperature": 2.0, "seed": 3, "draws": 500, "leapfrog": 8})
    assert diffs == ["--temperature 2.0 differs from the stored 1.0", "--leapfrog 8 differs from the stored None"]
    assert cfg.differing_fields(cfg.replace(box=5.0, draws=1)) == ["box"]
    assert cfg.differing_fields(cfg) == []
