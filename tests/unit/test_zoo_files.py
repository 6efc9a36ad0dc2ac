"""rl-zoo hyperparameter files as `pgrl train --config` reads them (pgrl.zoo)."""

from __future__ import annotations

import pytest
import yaml

from pgrl import zoo
from pgrl.algos import ALGORITHMS
from pgrl.errors import ConfigError

PPO_FIELDS = ALGORITHMS["ppo"].config_class.model_fields
A2C_FIELDS = ALGORITHMS["a2c"].config_class.model_fields
ZOO_DIR = zoo.rl_zoo_hyperparams_dir()  # None fails the tests that need it: make install brings rl_zoo3


def test_policy_kwargs_strings_are_parsed_without_eval():
    kwargs, notes = zoo.parse_policy_kwargs(
        "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[256, 256], vf=[256, 256]) )",
        "HalfCheetah-v4")
    assert kwargs == {"log_std_init": -2, "ortho_init": False, "activation_fn": "relu",
                      "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
    assert notes == []
    kwargs, notes = zoo.parse_policy_kwargs("dict(optimizer_class=RMSpropTFLike, optimizer_kwargs=dict(eps=1e-5))",
                                            "atari")
    assert kwargs == {"optimizer_kwargs": {"eps": 1e-5}}
    assert len(notes) == 1 and "optimizer_class=RMSpropTFLike" in notes[0] and "atari" in notes[0]


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "dict(a=open('x'))", "[x for x in ()]",
                                  "dict(a=(lambda: 1))"])
def test_code_in_policy_kwargs_is_never_run(text):
    try:
        kwargs, notes = zoo.parse_policy_kwargs(text, "CartPole-v1")
    except ConfigError as exc:
        assert "CartPole-v1" in str(exc)
    else:
        assert kwargs == {} and len(notes) == 1


def test_entry_selection_and_translation():
    data = {
        "default": {"n_timesteps": 1e6, "policy": "MlpPolicy"},
        "atari": {"policy": "CnnPolicy", "frame_stack": 4,
                  "env_wrapper": ["stable_baselines3.common.atari_wrappers.AtariWrapper"]},
        "Pendulum-v1": {"normalize": "{'norm_obs': False, 'norm_reward': True}", "n_steps": 1024,
                        "policy_kwargs": "dict(log_std_init=-1, activation_fn=nn.Tanh)", "sde_net_arch": [64],
                        "env_kwargs": {"g": 9.81}},
    }
    entry = zoo.translate("ppo", "Pendulum-v1", data, PPO_FIELDS)
    assert entry.key == "Pendulum-v1" and entry.env_kwargs == {"g": 9.81}
    assert entry.hparams["normalize"] is False and entry.hparams["normalize_reward"] is True
    assert entry.hparams["policy_kwargs"] == {"log_std_init": -1, "activation_fn": "tanh"}
    assert entry.hparams["n_envs"] == 1  # SB3's default, not pgrl's 8
    assert entry.notes == ["sde_net_arch for Pendulum-v1: pgrl's ppo has no such setting, so it is left out"]
    atari = zoo.translate("ppo", "ALE/Pong-v5", data, PPO_FIELDS)
    assert atari.key == "atari" and atari.notes == [] and atari.hparams["policy"] == "CnnPolicy"
    other = zoo.translate("ppo", "Acrobot-v1", data, PPO_FIELDS)
    assert other.key == "default" and other.hparams["n_timesteps"] == 1e6
    with pytest.raises(ConfigError, match="no entry for Acrobot-v1"):
        zoo.translate("ppo", "Acrobot-v1", {"CartPole-v1": {}}, PPO_FIELDS)


def test_sb3_meanings_carry_over():
    big_batch = zoo.translate("ppo", "MountainCarContinuous-v0",
                              {"MountainCarContinuous-v0": {"n_steps": 8, "batch_size": 256, "normalize": True}},
                              PPO_FIELDS).hparams
    assert big_batch["batch_size"] == 8 and big_batch["normalize"] and big_batch["normalize_reward"]
    lstm = zoo.translate("ppo", "CartPoleNoVel-v1", {"CartPoleNoVel-v1": {"policy": "MlpLstmPolicy"}},
                         PPO_FIELDS).hparams
    assert lstm["n_steps"] == 128 and lstm["batch_size"] == 128  # RecurrentPPO's defaults
    a2c = zoo.translate("a2c", "CartPole-v1", {"CartPole-v1": {"use_rms_prop": False}}, A2C_FIELDS).hparams
    assert a2c["optimizer"] == "adam"
    wrapped = zoo.translate("ppo", "CartPole-v1", {"CartPole-v1": {
        "env_wrapper": ["gymnasium.wrappers.FlattenObservation", "no_such_module.Wrapper"]}}, PPO_FIELDS)
    assert wrapped.env_wrappers == ["gymnasium.wrappers:FlattenObservation"]
    assert len(wrapped.notes) == 1 and "no_such_module.Wrapper" in wrapped.notes[0]


def test_pgrl_files_are_not_taken_for_rl_zoo_files():
    assert not zoo.is_zoo_file({"n_steps": 64, "policy_kwargs": {"net_arch": [32]}}, PPO_FIELDS)
    assert zoo.is_zoo_file({"CartPole-v1": {"n_steps": 64}}, PPO_FIELDS)


@pytest.mark.parametrize("stem", sorted(zoo.ZOO_FILES))
def test_every_installed_rl_zoo_entry_builds_or_says_why(stem):
    rows = zoo.survey(stem)
    data = yaml.safe_load((ZOO_DIR / f"{stem}.yml").read_text())
    assert [r.env_id for r in rows] == list(data)
    installed = [r for r in rows if r.status != "not installed"]
    assert installed, "no env of this file is installed"
    for row in installed:
        assert row.status in ("builds", "builds with notes"), (row.env_id, row.detail)
        for note in row.detail:  # one sentence naming the key and the env
            assert note.count(". ") == 0 and (row.env_id in note or row.env_id in ("atari", "default"))
