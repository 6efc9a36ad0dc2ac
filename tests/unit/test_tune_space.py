"""pgrl tune's search spaces: rl-zoo's defaults, transforms, named choices, overrides, bad entries."""

from __future__ import annotations

import re

import optuna
import pytest

from pgrl.errors import ConfigError
from pgrl.tune import TuneSettings, default_search_space, nest, sample, search_space, trial_hparams


def test_default_spaces_hold_rl_zoo_ranges():
    ppo = default_search_space("ppo")
    assert ppo["learning_rate"] == {"float": [1e-5, 0.002], "log": True}
    assert ppo["n_steps"] == {"int": [5, 12], "transform": "pow2"}
    assert set(ppo["policy_kwargs.net_arch"]["choices"]) == {"tiny", "small", "medium"}
    assert set(default_search_space("a2c")["n_steps"]["choices"]) == {32, 64, 128, 256, 512, 1024, 2048}
    assert default_search_space("trpo")["n_critic_updates"] == {"int": [5, 30]}
    assert default_search_space("vpg") == {}


def test_sample_applies_transforms_and_named_choices():
    space = default_search_space("ppo")
    trial = optuna.trial.FixedTrial({
        "batch_size_pow": 6, "n_steps_pow": 7, "one_minus_gamma": 0.01, "one_minus_gae_lambda": 0.05,
        "learning_rate": 3e-4, "ent_coef": 1e-3, "clip_range": 0.2, "n_epochs": 10, "max_grad_norm": 0.5,
        "policy_kwargs.net_arch": "small", "policy_kwargs.activation_fn": "relu",
    })
    values = sample(trial, space)
    assert values["batch_size"] == 64 and values["n_steps"] == 128
    assert values["gamma"] == pytest.approx(0.99) and values["gae_lambda"] == pytest.approx(0.95)
    assert values["policy_kwargs.net_arch"] == {"pi": [64, 64], "vf": [64, 64]}
    nested = nest(values)
    assert nested["policy_kwargs"] == {"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": "relu"}


def test_trial_hparams_start_from_the_preset_and_fit_the_batch(tmp_path):
    settings = TuneSettings("ppo", "CartPole-v1", timesteps=20_000)
    hparams = trial_hparams(settings, {"n_steps": 16, "batch_size": 1024, "learning_rate": 1e-3})
    assert hparams["n_envs"] == 8  # the CartPole-v1 preset's
    assert hparams["batch_size"] == 16 * 8  # more than the rollout: the whole rollout
    assert hparams["n_timesteps"] == 20_000 and hparams["learning_rate"] == 1e-3


def test_search_space_file_replaces_adds_and_drops(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("learning_rate: {choices: [0.001, 0.0003]}\nvf_coef: {float: [0.2, 0.8]}\nent_coef: null\n"
                    "n_envs: 4\n")
    space = search_space("ppo", path)
    assert space["learning_rate"] == {"choices": [0.001, 0.0003]}
    assert space["vf_coef"] == {"float": [0.2, 0.8]} and "ent_coef" not in space and space["n_envs"] == 4


@pytest.mark.parametrize(("text", "words"), [
    ("learning_rate: {float: [0.1]}", "takes [LOW, HIGH]"),
    ("learning_rate: {float: [0.0, 0.1], log: true}", "log scale needs LOW > 0"),
    ("n_steps: {int: [3, 6], transform: square}", "transform must be one of"),
    ("n_steps: {int: [3, 6], choices: [8]}", "exactly one of"),
    ("n_steps: {choices: []}", "choices is empty"),
    ("n_steps: {int: [3, 6], step: 2}", "unknown fields step"),
])
def test_bad_search_space_entries_are_one_sentence(tmp_path, text, words):
    path = tmp_path / "space.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=re.escape(words)):
        search_space("ppo", path)


def test_an_algorithm_without_a_default_space_needs_a_file():
    with pytest.raises(ConfigError, match="no default search space for vpg"):
        search_space("vpg")
