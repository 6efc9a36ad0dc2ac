"""Unit tests of the studies' estimators and statistics on tiny hand-built batches."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrl.errors import ConfigError
from pgrl.policies.actor_critic import ActorCriticPolicy
from pgrl.rollout.storage import Rollout
from pgrl.studies import StudyResult
from pgrl.studies.common import FixedPolicy, horizon_for
from pgrl.studies.gae_lambda import check_restorable, gae_lambda_study, parse_lambdas
from pgrl.studies.grad_variance import (
    ESTIMATORS,
    estimator_coefficients,
    gradient_statistics,
    partition_batches,
    policy_gradients,
)

GAMMA = 0.5
K = {name: i for i, name in enumerate(ESTIMATORS)}


def tiny_policy() -> FixedPolicy:
    torch.manual_seed(3)
    obs_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    policy = ActorCriticPolicy(obs_space, gym.spaces.Discrete(2), net_arch=[8])
    # a non-trivial policy: larger output weights than the near-uniform initialisation
    with torch.no_grad():
        policy.pi_head[0].weight.mul_(100.0)
    return FixedPolicy("tiny", policy, None, 1.0, GAMMA, "test")


def hand_batch(truncate_second: bool = False) -> Rollout:
    """Two whole episodes, T = 3 steps of storage.

    episode 0: rewards 1, 2, 3, terminates at t = 2.
    episode 1: rewards 4, 5, ends at t = 1 (terminated, or truncated by a time limit); t = 2 is
    after its end (invalid, garbage reward 100 that no estimator may see).
    """
    torch.manual_seed(4)
    T, N = 3, 2
    rewards = torch.tensor([[1.0, 4.0], [2.0, 5.0], [3.0, 100.0]])
    terminated = torch.tensor([[False, False], [False, not truncate_second], [True, False]])
    truncated = torch.tensor([[False, False], [False, truncate_second], [False, False]])
    valid = torch.tensor([[True, True], [True, True], [True, False]])
    return Rollout(
        obs=torch.randn(T, N, 3),
        actions=torch.tensor([[0, 1], [1, 1], [0, 0]]),
        log_probs=torch.zeros(T, N),
        rewards=rewards,
        terminated=terminated,
        truncated=truncated,
        next_obs=torch.randn(T, N, 3),
        valid=valid,
    )


VALUES = torch.tensor([[0.5, 1.0], [1.5, 2.0], [2.5, 3.0]])
NEXT_VALUES = torch.tensor([[1.5, 2.0], [2.5, 7.0], [9.0, 9.0]])


def test_coefficients_match_hand_values():
    c = estimator_coefficients(hand_batch(), VALUES, NEXT_VALUES, GAMMA, gae_lambda=0.95)
    # episode 0: G = [1 + .5*2 + .25*3, 2 + .5*3, 3] = [2.75, 3.5, 3]; episode 1: G = [6.5, 5]
    valid = hand_batch().valid
    assert c[K["reinforce_episode"]][valid].tolist() == [2.75, 6.5, 2.75, 6.5, 2.75]
    assert c[K["reinforce_rtg"]][valid].tolist() == pytest.approx([2.75, 6.5, 0.5 * 3.5, 0.5 * 5.0, 0.25 * 3.0])
    baseline = [2.75 - 0.5, 6.5 - 1.0, 0.5 * (3.5 - 1.5), 0.5 * (5.0 - 2.0), 0.25 * (3.0 - 2.5)]
    assert c[K["vpg_baseline"]][valid].tolist() == pytest.approx(baseline)
    # TD(0): r + gamma (1 - terminated) V(s') - V(s); terminal steps do not bootstrap
    td = [1 + 0.5 * 1.5 - 0.5, 4 + 0.5 * 2.0 - 1.0, 0.5 * (2 + 0.5 * 2.5 - 1.5), 0.5 * (5 - 2.0), 0.25 * (3 - 2.5)]
    assert c[K["td0"]][valid].tolist() == pytest.approx(td)


def test_gae_lambda0_is_td0_and_lambda1_is_mc_minus_baseline_without_truncation():
    batch = hand_batch()
    c0 = estimator_coefficients(batch, VALUES, NEXT_VALUES, GAMMA, gae_lambda=0.0)
    c1 = estimator_coefficients(batch, VALUES, NEXT_VALUES, GAMMA, gae_lambda=1.0)
    valid = batch.valid
    assert torch.allclose(c0[K["gae"]][valid], c0[K["td0"]][valid])
    assert torch.allclose(c1[K["gae"]][valid], c1[K["vpg_baseline"]][valid])


def test_truncation_bootstraps_critic_estimators_but_never_monte_carlo_ones():
    batch = hand_batch(truncate_second=True)
    c1 = estimator_coefficients(batch, VALUES, NEXT_VALUES, GAMMA, gae_lambda=1.0, gamma_weighting=False)
    # episode 1 truncated at t = 1: MC return 5 stays; GAE(1) and TD(0) add gamma * V(final obs) = 0.5 * 7
    assert float(c1[K["vpg_baseline"]][1, 1]) == pytest.approx(5.0 - 2.0)
    assert float(c1[K["td0"]][1, 1]) == pytest.approx(5.0 + 0.5 * 7.0 - 2.0)
    assert float(c1[K["gae"]][1, 1]) == pytest.approx(5.0 + 0.5 * 7.0 - 2.0)
    assert float(c1[K["gae"]][0, 1]) == pytest.approx(4.0 + 0.5 * (5.0 + 0.5 * 7.0) - 1.0)
    assert float(c1[K["reinforce_episode"]][0, 1]) == pytest.approx(6.5)


def test_reinforce_gradient_equals_autograd_of_return_weighted_log_likelihood():
    fixed = tiny_policy()
    batch = hand_batch()
    c = estimator_coefficients(batch, VALUES, NEXT_VALUES, GAMMA)
    grads = policy_gradients(fixed, batch, c)
    assert grads.shape == (len(ESTIMATORS), sum(p.numel() for p in fixed.policy.actor_parameters()))

    params = list(fixed.policy.actor_parameters())
    log_probs = fixed.policy.distribution(batch.obs[batch.valid]).log_prob(batch.actions[batch.valid])
    episode_return = torch.tensor([2.75, 6.5, 2.75, 6.5, 2.75])
    # -sum G log pi is the loss; the estimator is the ascent direction, its negative gradient
    loss = -(episode_return * log_probs).sum() / 2
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
    assert torch.allclose(grads[K["reinforce_episode"]], -expected, atol=1e-5)
    assert grads[K["reinforce_episode"]].abs().sum() > 0
    # every estimator is linear in its coefficients: a one-by-one backward gives the same rows
    for k in range(len(ESTIMATORS)):
        one = policy_gradients(fixed, batch, c[k : k + 1])[0]
        assert torch.allclose(one, grads[k], atol=1e-5)


def test_a2c_gae_lambda0_gradient_equals_td0_gradient():
    fixed = tiny_policy()
    batch = hand_batch(truncate_second=True)
    c = estimator_coefficients(batch, VALUES, NEXT_VALUES, GAMMA, gae_lambda=0.0)
    grads = policy_gradients(fixed, batch, c)
    assert torch.allclose(grads[K["gae"]], grads[K["td0"]], atol=1e-6)


def test_gradient_statistics_match_hand_values():
    grads = torch.tensor([[1.0, 1.0], [3.0, 1.0]])
    stats = gradient_statistics(grads, torch.tensor([1.0, 0.0]))
    assert stats["total_variance"] == pytest.approx(2.0)  # ((1-2)^2 + (3-2)^2) / (2 - 1)
    assert stats["mean_grad_sq_norm"] == pytest.approx(5.0)  # ||(2, 1)||^2
    assert stats["snr"] == pytest.approx(5.0 / 2.0 - 1.0 / 2)
    assert stats["cosine_mean"] == pytest.approx((1 / math.sqrt(2) + 3 / math.sqrt(10)) / 2)
    assert stats["cos_mean_ref"] == pytest.approx(2 / math.sqrt(5))


def test_partition_batches_by_episodes_and_by_steps():
    lengths = torch.tensor([5, 3, 10, 2, 2, 7, 1])
    by_episodes = partition_batches(lengths, 3, 2, None)
    assert [b.tolist() for b in by_episodes] == [[0, 1], [2, 3], [4, 5]]
    by_steps = partition_batches(lengths, 2, None, 8)
    assert [b.tolist() for b in by_steps] == [[0, 1], [2]]
    assert partition_batches(lengths, 4, None, 8) is None  # the pool runs out


def test_horizon_makes_discount_negligible():
    H = horizon_for(0.99)
    assert 0.99**H <= 1e-3 < 0.99 ** (H - 1)


def test_parse_lambdas():
    assert parse_lambdas("0,0.5, 1") == [0.0, 0.5, 1.0]
    assert parse_lambdas([0.9, 1]) == [0.9, 1.0]
    for bad in ("0,1.5", "a,b", ""):
        with pytest.raises(ConfigError, match="--lambdas takes comma-separated numbers"):
            parse_lambdas(bad)


@pytest.mark.parametrize("env_id", ["LunarLander-v3", "Taxi-v3", "CartPole-v9"])
def test_gae_study_rejects_envs_that_cannot_be_restored(env_id, tmp_path):
    message = (
        f"the gae-lambda study restarts environments from saved states, which {env_id} does not allow; "
        "use one of CartPole-v1, Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0, Pendulum-v1, "
        "CartPoleNoVel-v1, MountainCarNoVel-v0, MountainCarContinuousNoVel-v0, PendulumNoVel-v1"
    )
    with pytest.raises(ConfigError) as info:
        gae_lambda_study(env_id, [0.0, 1.0], tmp_path)
    assert str(info.value) == message
    with pytest.raises(ConfigError):
        check_restorable(env_id)
    assert not any(tmp_path.iterdir())


def test_study_result_has_exactly_the_report_fields():
    import dataclasses

    assert [f.name for f in dataclasses.fields(StudyResult)] == ["title", "text", "figures", "table"]


def test_grad_variance_study_rejects_both_batch_sizes_before_any_work(tmp_path):
    from pgrl.studies.grad_variance import grad_variance_study

    with pytest.raises(ConfigError, match="give batch_episodes or batch_steps, not both"):
        grad_variance_study("CartPole-v1", tmp_path, batch_episodes=4, batch_steps=100)
    with pytest.raises(ConfigError, match="batches must be at least 2"):
        grad_variance_study("CartPole-v1", tmp_path, batches=1)
    assert not any(tmp_path.iterdir())
