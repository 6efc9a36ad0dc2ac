"""Presets, config files, --set parsing and schedules."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from pgrl.algos import ALGORITHMS
from pgrl.config import build_config, load_config_file, make_schedule, merge, parse_overrides
from pgrl.errors import ConfigError


def all_presets():
    for path in sorted((resources.files("pgrl") / "presets").iterdir()):
        if not path.name.endswith(".yaml"):
            continue
        algo = path.name.removesuffix(".yaml")
        for env_id, variants in yaml.safe_load(path.read_text()).items():
            for name, values in variants.items():
                yield pytest.param(algo, values, id=f"{algo}-{env_id}-{name}")


@pytest.mark.parametrize(("algo", "values"), list(all_presets()))
def test_every_preset_validates_and_has_a_budget(algo, values):
    assert algo in ALGORITHMS, f"presets/{algo}.yaml names no algorithm"
    config = build_config(ALGORITHMS[algo].config_class, algo, values)
    assert config.n_timesteps and config.n_timesteps > 0


def test_reference_presets_follow_the_chapter_table():
    vpg = build_config(ALGORITHMS["vpg"].config_class, "vpg", _preset("vpg", "reference"))
    assert vpg.policy_kwargs.net_arch == {"pi": [128, 64], "vf": [256, 128]}
    assert (vpg.learning_rate, vpg.vf_learning_rate, vpg.vf_optimizer) == (0.0007, 0.001, "rmsprop")
    assert (vpg.ent_coef, vpg.max_grad_norm) == (0.001, 1.0)
    a2c = build_config(ALGORITHMS["a2c"].config_class, "a2c", _preset("a2c", "reference"))
    assert a2c.policy_kwargs.shared and a2c.policy_kwargs.net_arch == [256, 128]
    assert (a2c.learning_rate, a2c.vf_coef, a2c.ent_coef, a2c.n_steps, a2c.gae_lambda) == (0.002, 0.6, 0.001, 10, 0.95)


def _preset(algo, name):
    from pgrl.config import load_preset

    return load_preset(algo, "CartPole-v1", name)


def test_overrides_are_parsed_as_yaml_and_nest():
    values = parse_overrides(["n_steps=64", "learning_rate=lin_1e-3", "policy_kwargs.net_arch=[32, 32]",
                              "target_kl=null", "normalize=true"])
    assert values == {"n_steps": 64, "learning_rate": "lin_1e-3", "policy_kwargs": {"net_arch": [32, 32]},
                      "target_kl": None, "normalize": True}
    merged = merge({"policy_kwargs": {"net_arch": [64], "activation_fn": "relu"}}, values)
    assert merged["policy_kwargs"] == {"net_arch": [32, 32], "activation_fn": "relu"}


def test_budgets_accept_yaml_float_spellings():
    config_class = ALGORITHMS["ppo"].config_class
    for spelling in (100000, 1.0e5, "1.0e5", "1e5"):
        assert build_config(config_class, "ppo", {"n_timesteps": spelling}).n_timesteps == 100000
    with pytest.raises(ConfigError, match="n_timesteps"):
        build_config(config_class, "ppo", {"n_timesteps": 1.5})


def test_schedules():
    assert make_schedule("lin_0.001")(0.25) == pytest.approx(0.00025)
    assert make_schedule(0.5)(0.1) == 0.5
    assert make_schedule(lambda p: 2 * p)(0.5) == 1.0
    with pytest.raises(ConfigError, match="'learning_rate' for ppo is invalid"):
        build_config(ALGORITHMS["ppo"].config_class, "ppo", {"learning_rate": "fast"})


def test_config_files(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("n_steps: 16\nbatch_size: 32\n")
    assert load_config_file(good) == {"n_steps": 16, "batch_size": 32}
    listing = tmp_path / "l.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config_file(listing)
