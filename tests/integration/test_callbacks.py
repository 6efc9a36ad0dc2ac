"""Stable-Baselines3's callback API: hook order, stopping, EvalCallback, CheckpointCallback, lists."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import pgrl
from pgrl.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    EveryNTimesteps,
    StopTrainingOnNoModelImprovement,
    StopTrainingOnRewardThreshold,
)
from pgrl.errors import ConfigError

SMALL = {"n_envs": 2, "n_steps": 4, "batch_size": 8, "n_epochs": 1}


class Recorder(BaseCallback):
    def __init__(self, stop_at_call: int | None = None):
        super().__init__()
        self.events: list[str] = []
        self.steps_seen: list[int] = []
        self.stop_at_call = stop_at_call

    def _on_training_start(self):
        self.events.append("training_start")

    def _on_rollout_start(self):
        self.events.append("rollout_start")

    def _on_step(self):
        self.events.append("step")
        self.steps_seen.append(self.num_timesteps)
        assert self.locals["dones"].shape == (2,)
        return self.n_calls != self.stop_at_call

    def _on_rollout_end(self):
        self.events.append("rollout_end")

    def _on_training_end(self):
        self.events.append("training_end")


def _params(model):
    return torch.cat([p.detach().flatten().clone() for p in model.policy.parameters()])


@pytest.mark.parametrize("algo", ["ppo", "a2c", "reinforce"])
def test_hook_order_matches_sb3(algo):
    hparams = SMALL if algo == "ppo" else {"n_envs": 2, "n_steps": 4} if algo == "a2c" else {"n_envs": 2}
    model = pgrl.ALGORITHMS[algo]("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **hparams)
    recorder = Recorder()
    model.learn(16, callback=recorder)
    events = recorder.events
    assert events[0] == "training_start" and events[-1] == "training_end"
    rollouts = "-".join(events[1:-1]).split("rollout_end")
    assert all(r.strip("-").startswith("rollout_start") for r in rollouts[:-1])
    assert events.count("step") == recorder.n_calls > 0
    if algo != "reinforce":  # fixed-length rollouts: 4 steps of 2 envs each
        assert events[1:-1] == (["rollout_start"] + ["step"] * 4 + ["rollout_end"]) * 2
        assert recorder.steps_seen == [2, 4, 6, 8, 10, 12, 14, 16]


def test_on_step_false_stops_before_the_update():
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **SMALL)
    before = _params(model)
    recorder = Recorder(stop_at_call=3)
    model.learn(1000, callback=recorder)
    assert recorder.n_calls == 3 and recorder.events[-1] == "training_end"
    assert model.num_timesteps == 0 and torch.equal(before, _params(model))  # no update on a stopped rollout


def test_eval_callback_stops_at_the_reward_threshold_and_saves_the_best_model(tmp_path):
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu")  # default preset: 8 envs x 32 steps
    stop = StopTrainingOnRewardThreshold(reward_threshold=475, verbose=0)
    evaluator = EvalCallback("CartPole-v1", callback_on_new_best=stop, n_eval_episodes=5, eval_freq=125,
                             best_model_save_path=tmp_path, log_path=tmp_path, verbose=0)
    model.learn(100_000, callback=evaluator, log_dir=tmp_path / "run")
    assert evaluator.best_mean_reward >= 475 and len(evaluator.evaluations_timesteps) > 2, evaluator.evaluations_results
    assert model.num_timesteps < 100_000
    rollout = model.config.n_steps * model.config.n_envs
    assert 0 <= evaluator.num_timesteps - model.num_timesteps <= rollout  # stopped within one rollout
    best = pgrl.PPO.load(tmp_path / "best_model.safetensors")
    mean, _ = pgrl.evaluate_policy(best, "CartPole-v1", 5)
    assert mean == pytest.approx(evaluator.best_mean_reward)
    saved = np.load(tmp_path / "evaluations.npz")
    assert saved["results"].shape == (len(evaluator.evaluations_timesteps), 5)
    with (tmp_path / "run" / "metrics.csv").open() as handle:
        assert "eval/mean_reward" in next(csv.reader(handle))  # logger.record reaches the rows


def test_no_improvement_stops_after_patience(tmp_path):
    model = pgrl.A2C("MlpPolicy", "CartPole-v1", seed=0, device="cpu", learning_rate=0.0, n_envs=2, n_steps=5)
    patience = StopTrainingOnNoModelImprovement(max_no_improvement_evals=1)
    evaluator = EvalCallback("CartPole-v1", callback_after_eval=patience, n_eval_episodes=2, eval_freq=10, verbose=0)
    model.learn(10_000, callback=evaluator)
    assert len(evaluator.evaluations_timesteps) == 3  # first eval, then two without improvement


def test_checkpoints_every_n_timesteps_and_lists(tmp_path):
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **SMALL)
    rows = []
    every = EveryNTimesteps(8, CheckpointCallback(save_freq=1, save_path=tmp_path, name_prefix="m"))
    model.learn(32, callback=[every, lambda algo, row: rows.append(row["rollout/episodes"])])
    saved = {p.name for p in tmp_path.glob("m_*_steps.safetensors")}
    assert saved == {f"m_{n}_steps.safetensors" for n in (8, 16, 24, 32)}
    assert rows  # the plain row callback ran too
    for path in tmp_path.glob("m_*"):
        pgrl.PPO.load(path)
    assert isinstance(pgrl.callbacks.as_callback([every]), CallbackList)


def test_a_bad_callback_is_one_sentence():
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **SMALL)
    with pytest.raises(ConfigError, match="callback must be"):
        model.learn(16, callback=42)
