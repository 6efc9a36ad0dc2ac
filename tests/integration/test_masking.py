"""Invalid-action masks: from the env's action_masks() (sb3-contrib's convention), from
info["action_mask"] and from a Dict observation key "action_mask"; Discrete and MultiDiscrete
(per entry); used while collecting, stored and used again in every algorithm's update, and by
predict and evaluate_policy.  A native (tensor) env can hand its masks over as a tensor.
"""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import pytest
import torch
from algo_configs import ALGOS, SMALL

import pgrl
from pgrl.envs.base import Step, VecEnv
from pgrl.envs.identity import InvalidActionEnv
from pgrl.errors import EnvError


def _invalid_actions(model) -> int:
    return sum(env.unwrapped.invalid_actions for env in model.env.vec.envs)


@pytest.mark.parametrize("mask_via", ["method", "info", "obs"])
@pytest.mark.parametrize("entries", [None, 2], ids=["discrete", "multidiscrete"])
def test_ppo_never_takes_an_invalid_action_whatever_gives_the_masks(mask_via, entries):
    factory = partial(InvalidActionEnv, dim=10, n_invalid=7, entries=entries, ep_length=20, mask_via=mask_via)
    policy = "MultiInputPolicy" if mask_via == "obs" else "MlpPolicy"
    model = pgrl.PPO(policy, factory, n_envs=2, n_steps=64, batch_size=64, n_epochs=2, seed=0)
    model.learn(512)
    assert _invalid_actions(model) == 0
    masks = model.collector()._storage.action_masks
    assert masks is not None and masks.dtype == torch.bool and masks.shape == (64, 2, 10 * (entries or 1))
    env = factory()
    pgrl.evaluate_policy(model, env, n_eval_episodes=3, deterministic=False)
    assert env.invalid_actions == 0


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algorithm_trains_with_masks(algo):
    factory = partial(InvalidActionEnv, dim=8, n_invalid=5, ep_length=16)
    model = pgrl.Algorithm.registry[algo]("MlpPolicy", factory, n_envs=2, seed=0, **SMALL[algo])
    model.learn(128)
    if algo != "a3c":  # A3C's workers own their envs
        assert _invalid_actions(model) == 0
    env = factory()
    pgrl.evaluate_policy(model, env, n_eval_episodes=2, deterministic=False)
    assert env.invalid_actions == 0


def test_the_update_uses_the_stored_masks():
    """The log-probs recomputed in the update (with the stored masks) equal the acting ones."""
    model = pgrl.PPO("MlpPolicy", partial(InvalidActionEnv, dim=10, n_invalid=7, ep_length=20), n_envs=2,
                     n_steps=32, batch_size=64, n_epochs=1, seed=0)
    rollout = model.collector().collect(32)
    flat = lambda x: x.reshape(64, *x.shape[2:])  # noqa: E731
    with torch.no_grad():
        masked, _, _ = model.policy.evaluate(flat(rollout.obs), flat(rollout.actions), flat(rollout.action_masks))
        unmasked, _, _ = model.policy.evaluate(flat(rollout.obs), flat(rollout.actions))
    torch.testing.assert_close(masked, flat(rollout.log_probs))
    assert bool((unmasked < masked).all())  # without the masks the valid actions would share less mass


def test_predict_uses_an_action_mask_key_of_the_observation():
    env = InvalidActionEnv(dim=10, n_invalid=8, mask_via="obs")
    model = pgrl.PPO("MultiInputPolicy", env, n_steps=32, batch_size=32, seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(200):
        action, _ = model.predict(obs, deterministic=False)
        obs, *_ = env.step(action)
    assert env.invalid_actions == 0


def test_predict_takes_action_masks():
    model = pgrl.PPO("MlpPolicy", InvalidActionEnv(dim=10, n_invalid=7), n_steps=32, batch_size=32, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 10, 500)
    masks = rng.random((500, 10)) < 0.3
    masks[np.arange(500), rng.integers(0, 10, 500)] = True
    actions, _ = model.predict(obs, deterministic=False, action_masks=masks)
    assert bool(masks[np.arange(500), actions].all())
    one, _ = model.predict(int(obs[0]), action_masks=masks[0])
    assert np.shape(one) == () and masks[0, int(one)]


class TensorMaskEnv(VecEnv):
    """A torch-only env (as pgrl's native ones): 4 actions, only action (t mod 4) is valid at step t."""

    env_id, num_envs, max_episode_steps = "tensor-mask", 3, None
    single_observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    single_action_space = gym.spaces.Discrete(4)
    device = torch.device("cpu")

    def __init__(self):
        self.t, self.taken = 0, []

    def reset(self, seed=None):
        self.t = 0
        return torch.zeros(3, 2)

    def action_masks(self):
        return torch.nn.functional.one_hot(torch.full((3,), self.t % 4), 4).bool()

    def step(self, actions):
        self.taken.append((self.t % 4, actions.clone()))
        self.t += 1
        zeros = torch.zeros(3, dtype=torch.bool)
        return Step(torch.zeros(3, 2), torch.ones(3), zeros, zeros, torch.zeros(3, 2))


def test_a_tensor_env_hands_its_masks_over_as_tensors():
    env = TensorMaskEnv()
    model = pgrl.A2C("MlpPolicy", env, n_steps=8, seed=0)
    model.learn(48)
    assert all(bool((actions == valid).all()) for valid, actions in env.taken)


class SometimesMaskedEnv(InvalidActionEnv):
    """Gives info["action_mask"] on even steps only: the other steps allow every action."""

    def __init__(self):
        super().__init__(dim=6, n_invalid=4, ep_length=10, mask_via="info")

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, info if self.current_step % 2 == 0 else {}


def test_steps_without_a_mask_in_info_allow_every_action():
    model = pgrl.A2C("MlpPolicy", SometimesMaskedEnv, n_envs=2, n_steps=10, seed=0)
    rollout = model.collector().collect(10)
    odd = rollout.action_masks[1::2]  # the observations of odd steps came without masks
    assert bool(odd.all()) and not bool(rollout.action_masks[0].all())


class _BadMaskEnv(InvalidActionEnv):
    """InvalidActionEnv whose masks go wrong at the third step: too short, or allowing nothing."""

    def __init__(self, fault: str, **kwargs):
        super().__init__(**kwargs)
        self.fault = fault

    def _current_mask(self):
        mask = super()._current_mask()
        if self.current_step < 3:
            return mask
        return mask[:-1] if self.fault == "shape" else np.zeros_like(mask)


@pytest.mark.parametrize("fault,entries,message", [
    ("shape", None, r"gave action masks of shape \(9,\) per copy at step 3; .* needs 10 booleans"),
    ("none", None, r"copy 0 allows no action at step 3 \(its action mask is all False\)"),
    ("none", 2, r"copy 0 allows no action for action entry 0 at step 3"),
])
def test_bad_masks_are_named_with_the_env_and_the_step(fault, entries, message):
    model = pgrl.PPO("MlpPolicy", partial(_BadMaskEnv, fault, dim=10, n_invalid=5, entries=entries),
                     n_envs=2, n_steps=8, batch_size=16)
    with pytest.raises(EnvError, match=message):
        model.learn(16)


def test_a_tensor_env_mask_with_no_valid_action_stops_the_run_with_the_env_named():
    class NoActionEnv(VecEnv):
        """A tensor env whose masks allow nothing for copy 1."""

        env_id, num_envs, device, max_episode_steps = "pgrl-test/NoAction", 2, torch.device("cpu"), None
        single_observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        single_action_space = gym.spaces.Discrete(4)

        def reset(self, seed=None):
            return torch.zeros(2, 3)

        def step(self, actions):
            zeros = torch.zeros(2, dtype=torch.bool)
            return Step(torch.zeros(2, 3), torch.zeros(2), zeros, zeros, torch.zeros(2, 3))

        def action_masks(self):
            return torch.tensor([[True, False, True, False], [False, False, False, False]])

    model = pgrl.PPO("MlpPolicy", NoActionEnv(), n_steps=8, batch_size=16)
    with pytest.raises(EnvError, match="pgrl-test/NoAction gave an action mask that allows no action in the rollout "
                                       "ending at step 16"):
        model.learn(16)
