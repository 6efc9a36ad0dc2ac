"""Memory: LSTM policies solve tasks a feed-forward policy cannot, and keep their masks.

CartPoleNoVel-v1 (CartPole-v1 with both velocities zeroed): PPO, 64 native envs x 32 steps,
batch 512, 8 epochs, GAE 0.9, normalize=True (the position differences the LSTM must read are
then ~20x larger than raw), LSTM 64, the rest of rl-zoo's RecurrentPPO preset; a greedy
100-episode evaluation every 10,240 steps, stopping at 475.  Seed sweep (AMD EPYC, 2026-12-01):
MlpLstmPolicy reached 475 at 79,872 / 59,392 / 49,152 / 49,152 / 151,552 / 202,752 / 38,912 /
90,112 steps (seeds 0-7); MlpPolicy's best evaluation over the same 300,000 steps was 44.5 /
44.0 / 44.1 (seeds 0-2).  Without normalize, 5 of 6 seeds stayed below 475 for 300,000 steps.

MemoryEnv(delay=8): the first observation shows one of two cues, the query 8 steps later asks
for it (+1 right, -1 wrong); a feed-forward policy's greedy return is 0 at best.  Seed sweep
(PPO, 8 envs x 64 steps, batch 128, 10 epochs, lr 1e-3, LSTM 32; greedy 200-episode mean; AMD
EPYC, 2026-12-01): at 8,192 steps seeds 0-3 reached 0.13, 1.00, 1.00, 1.00; at 16,384 (the
test's budget) all four 1.00, while MlpPolicy stayed at -0.13 and -0.01 (seeds 0, 1).
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

import pgrl
from pgrl.callbacks import EvalCallback, StopTrainingOnRewardThreshold
from pgrl.envs.identity import InvalidActionEnv, MemoryEnv

pytestmark = pytest.mark.learning
MEMORY_HP = {"n_envs": 8, "n_steps": 64, "batch_size": 128, "n_epochs": 10, "learning_rate": 1e-3,
             "gamma": 0.99, "ent_coef": 0.01}


NOVEL_HP = {"n_envs": 64, "n_steps": 32, "batch_size": 512, "n_epochs": 8, "gae_lambda": 0.9, "normalize": True}


def test_an_lstm_balances_cartpole_without_velocities_and_an_mlp_cannot():
    torch.set_num_threads(1)
    best = {}
    for policy, kwargs in (("MlpLstmPolicy", {"lstm_hidden_size": 64}), ("MlpPolicy", {})):
        model = pgrl.PPO(policy, "CartPoleNoVel-v1", seed=0, policy_kwargs=kwargs, **NOVEL_HP)
        evaluation = EvalCallback("CartPoleNoVel-v1", StopTrainingOnRewardThreshold(475), n_eval_episodes=100,
                                  eval_freq=10_240 // 64, verbose=0)
        model.learn(300_000, callback=evaluation)
        best[policy] = evaluation.best_mean_reward
    assert best["MlpLstmPolicy"] >= 475 and best["MlpPolicy"] < 200, best


def test_an_lstm_repeats_a_cue_seen_eight_steps_earlier_and_an_mlp_cannot():
    torch.set_num_threads(1)
    means = {}
    for policy, kwargs in (("MlpLstmPolicy", {"lstm_hidden_size": 32}), ("MlpPolicy", {})):
        model = pgrl.PPO(policy, partial(MemoryEnv, delay=8), seed=0, policy_kwargs=kwargs, **MEMORY_HP)
        model.learn(16_384)
        means[policy] = pgrl.evaluate_policy(model, MemoryEnv(delay=8), n_eval_episodes=200)[0]
    assert means["MlpLstmPolicy"] >= 0.9 and means["MlpPolicy"] <= 0.3, means


def test_masks_and_an_lstm_together_learn_with_no_invalid_action():
    """InvalidActionEnv (Discrete(40), 35 invalid actions each step, -10 each) with an LSTM policy and
    sb3-contrib's action_masks(): no invalid action in training or evaluation, and the task learned.
    Seed sweep (LSTM 64, lr 1e-3, greedy 5-episode mean; AMD EPYC, 2026-12-01): seeds 0-3 at 8,192
    steps 96.2, 96.2, 63.4, 88.6; at 16,384 (the test's budget) 99.8, 100, 99.0, 100; never an
    invalid action."""
    torch.set_num_threads(1)
    task = {"dim": 40, "n_invalid": 35, "ep_length": 100}
    model = pgrl.PPO("MlpLstmPolicy", partial(InvalidActionEnv, **task), seed=0, n_envs=4, n_steps=64,
                     batch_size=128, n_epochs=4, gamma=0.0, learning_rate=1e-3, policy_kwargs={"lstm_hidden_size": 64})
    model.learn(16_384)
    assert sum(env.unwrapped.invalid_actions for env in model.env.vec.envs) == 0
    env = InvalidActionEnv(**task)
    mean, _ = pgrl.evaluate_policy(model, env, n_eval_episodes=5)
    assert env.invalid_actions == 0 and mean >= 90
