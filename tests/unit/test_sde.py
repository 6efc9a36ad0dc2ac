"""gSDE: state-dependent exploration noise with a Gaussian marginal per state."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch

from pgrl.policies.actor_critic import ActorCriticPolicy


def make_policy():
    torch.manual_seed(0)
    obs_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    act_space = gym.spaces.Box(-2, 2, (2,), np.float32)
    return ActorCriticPolicy(obs_space, act_space, net_arch=[8], use_sde=True, log_std_init=-1.0)


def test_log_std_is_per_latent_unit_and_action():
    policy = make_policy()
    assert policy.use_sde and policy.log_std.shape == (8, 2)


def test_noise_is_fixed_between_resets_and_a_function_of_the_state():
    policy = make_policy()
    obs = torch.randn(4, 3)
    policy.reset_noise(4)
    a1, _ = policy.act(obs)
    a2, _ = policy.act(obs)
    assert torch.equal(a1, a2)  # same state, same exploration matrix -> same action
    policy.reset_noise(4)
    a3, _ = policy.act(obs)
    assert not torch.allclose(a1, a3)


def test_log_prob_is_the_gaussian_marginal():
    policy = make_policy()
    obs = torch.randn(5, 3)
    actions, log_probs = policy.act(obs)
    latent = policy.pi_body(obs)
    mean = policy.pi_head(latent)
    var = latent.pow(2) @ torch.exp(2 * policy.log_std) + 1e-6
    expected = (-0.5 * (actions - mean).pow(2) / var - 0.5 * torch.log(2 * math.pi * var)).sum(-1)
    torch.testing.assert_close(log_probs, expected, rtol=1e-5, atol=1e-5)
    # evaluate() gives the same log-probs (what PPO's ratio needs)
    torch.testing.assert_close(policy.evaluate(obs, actions)[0], log_probs)


def test_noise_statistics_match_the_marginal():
    policy = make_policy()
    obs = torch.randn(1, 3).expand(20000, 3)
    policy.reset_noise(20000)
    with torch.no_grad():
        actions, _ = policy.act(obs)
        dist = policy.distribution(obs[:1])
    torch.testing.assert_close(actions.mean(0), dist.mean[0], atol=0.02, rtol=0)
    torch.testing.assert_close(actions.std(0), dist.log_std.exp()[0], rtol=0.03, atol=0)
