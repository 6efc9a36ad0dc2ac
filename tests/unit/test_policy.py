"""Unit tests for pgrl.policies.actor_critic.ActorCriticPolicy: shapes, clipping, consistency,
parameter groups and unsupported spaces."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrl.errors import EnvError, PGRLError
from pgrl.policies.actor_critic import ActorCriticPolicy

B = 7
BOX_OBS = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
BOX_ACT = gym.spaces.Box(
    low=np.array([-1.0, -2.0], dtype=np.float32), high=np.array([1.0, 0.5], dtype=np.float32)
)
DISCRETE_ACT = gym.spaces.Discrete(3)


def make_obs(space: gym.Space, n: int = B) -> torch.Tensor:
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(0, int(space.n), (n,))
    return torch.randn(n, *space.shape)


SPACE_CASES = {
    "box-obs/discrete-act": (BOX_OBS, DISCRETE_ACT),
    "box-obs/box-act": (BOX_OBS, BOX_ACT),
    "discrete-obs/discrete-act": (gym.spaces.Discrete(5), gym.spaces.Discrete(2)),
    "discrete-obs/box-act": (gym.spaces.Discrete(5), BOX_ACT),
    "2d-box-obs/box-act": (gym.spaces.Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32), BOX_ACT),
}


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("case", list(SPACE_CASES))
def test_shapes_of_act_value_evaluate(case, shared):
    torch.manual_seed(0)
    obs_space, act_space = SPACE_CASES[case]
    policy = ActorCriticPolicy(obs_space, act_space, net_arch=[16, 16], shared=shared)
    obs = make_obs(obs_space)
    actions, log_probs = policy.act(obs)
    values = policy.value(obs)
    ev_log_probs, entropy, ev_values = policy.evaluate(obs, actions)
    if isinstance(act_space, gym.spaces.Box):
        assert actions.shape == (B, act_space.shape[0]) and actions.is_floating_point()
    else:
        assert actions.shape == (B,) and actions.dtype == torch.int64
        assert actions.min() >= 0 and actions.max() < act_space.n
    for name, x in [
        ("log_probs", log_probs),
        ("values", values),
        ("evaluate log_probs", ev_log_probs),
        ("entropy", entropy),
        ("evaluate values", ev_values),
    ]:
        assert x.shape == (B,), f"{name} has shape {tuple(x.shape)}, expected ({B},)"
        assert torch.isfinite(x).all()
    torch.testing.assert_close(ev_values, values)


@pytest.mark.parametrize("act_space", [DISCRETE_ACT, BOX_ACT], ids=["discrete", "box"])
def test_values_are_flat_even_for_a_single_row(act_space):
    policy = ActorCriticPolicy(BOX_OBS, act_space)
    obs = make_obs(BOX_OBS, 1)
    assert policy.value(obs).shape == (1,)
    actions, log_probs = policy.act(obs)
    assert log_probs.shape == (1,)
    assert policy.evaluate(obs, actions)[2].shape == (1,)


@pytest.mark.parametrize("case", list(SPACE_CASES))
def test_evaluate_log_probs_equal_act_log_probs(case):
    torch.manual_seed(1)
    obs_space, act_space = SPACE_CASES[case]
    policy = ActorCriticPolicy(obs_space, act_space, log_std_init=-0.5)
    obs = make_obs(obs_space)
    with torch.no_grad():
        for deterministic in (False, True):
            actions, log_probs = policy.act(obs, deterministic=deterministic)
            ev_log_probs, _, _ = policy.evaluate(obs, actions)
            torch.testing.assert_close(ev_log_probs, log_probs, rtol=0.0, atol=1e-5)


def test_discrete_probabilities_sum_to_one_and_mode_is_most_likely():
    torch.manual_seed(2)
    policy = ActorCriticPolicy(BOX_OBS, gym.spaces.Discrete(4))
    obs = make_obs(BOX_OBS)
    with torch.no_grad():
        all_lp = torch.stack([policy.evaluate(obs, torch.full((B,), a))[0] for a in range(4)], dim=1)
        torch.testing.assert_close(all_lp.exp().sum(1), torch.ones(B), rtol=0.0, atol=1e-5)
        mode, mode_lp = policy.act(obs, deterministic=True)
        assert torch.equal(mode, all_lp.argmax(1))
        torch.testing.assert_close(mode_lp, all_lp.max(1).values)
        # entropy from evaluate equals -sum p log p over the enumerated actions
        _, entropy, _ = policy.evaluate(obs, mode)
        torch.testing.assert_close(entropy, -(all_lp.exp() * all_lp).sum(1), rtol=0.0, atol=1e-5)


def test_gaussian_log_prob_at_the_mode_and_entropy_from_log_std_init():
    torch.manual_seed(3)
    log_std_init = 0.3
    policy = ActorCriticPolicy(BOX_OBS, BOX_ACT, log_std_init=log_std_init)
    obs = make_obs(BOX_OBS)
    d = BOX_ACT.shape[0]
    with torch.no_grad():
        mode, mode_lp = policy.act(obs, deterministic=True)
        # At the mean z = 0: log N = sum_d (-log sigma - 0.5 log 2 pi)
        expected_lp = -d * (log_std_init + 0.5 * math.log(2 * math.pi))
        torch.testing.assert_close(mode_lp, torch.full((B,), expected_lp), rtol=0.0, atol=1e-5)
        _, entropy, _ = policy.evaluate(obs, mode)
        expected_ent = d * (log_std_init + 0.5 + 0.5 * math.log(2 * math.pi))
        torch.testing.assert_close(entropy, torch.full((B,), expected_ent), rtol=0.0, atol=1e-5)


def test_act_returns_unclipped_samples_and_to_env_clips_to_bounds():
    torch.manual_seed(4)
    policy = ActorCriticPolicy(BOX_OBS, BOX_ACT, log_std_init=1.5)  # std ~ 4.5 >> the bounds
    obs = make_obs(BOX_OBS, 200)
    with torch.no_grad():
        actions, log_probs = policy.act(obs)
        env_actions = policy.to_env(actions)
    low, high = BOX_ACT.low.tolist(), BOX_ACT.high.tolist()
    below = actions < torch.tensor(low)
    above = actions > torch.tensor(high)
    # act does not clip: with this std many samples fall outside on both sides of both dims
    assert below.any(dim=0).all() and above.any(dim=0).all()
    assert env_actions.shape == actions.shape
    for i in range(actions.shape[0]):
        for j in range(2):
            a = actions[i, j].item()
            assert env_actions[i, j].item() == pytest.approx(min(max(a, low[j]), high[j]), abs=1e-6)
    # the log-probs belong to the unclipped samples
    torch.testing.assert_close(policy.evaluate(obs, actions)[0].detach(), log_probs, rtol=0.0, atol=1e-5)
    # to_env is the identity for Discrete actions
    dpolicy = ActorCriticPolicy(BOX_OBS, DISCRETE_ACT)
    dactions, _ = dpolicy.act(obs)
    assert torch.equal(dpolicy.to_env(dactions), dactions)


def _ids(params) -> set[int]:
    return {id(p) for p in params}


@pytest.mark.parametrize("act_space", [DISCRETE_ACT, BOX_ACT], ids=["discrete", "box"])
def test_shared_policy_has_one_trunk(act_space):
    policy = ActorCriticPolicy(BOX_OBS, act_space, net_arch=[32, 32], shared=True)
    trunk = _ids(policy.trunk.parameters())
    actor, critic = _ids(policy.actor_parameters()), _ids(policy.critic_parameters())
    assert len(trunk) == 4  # two Linear layers, weight and bias each
    assert actor & critic == trunk  # the overlap is the trunk and only the trunk
    assert actor | critic == _ids(policy.parameters())
    assert len(policy.actor_parameters()) == len(actor)  # no duplicates inside a group
    assert len(policy.critic_parameters()) == len(critic)
    if isinstance(act_space, gym.spaces.Box):
        assert id(policy.log_std) in actor and id(policy.log_std) not in critic


@pytest.mark.parametrize("act_space", [DISCRETE_ACT, BOX_ACT], ids=["discrete", "box"])
def test_separate_policy_groups_are_disjoint(act_space):
    torch.manual_seed(5)
    policy = ActorCriticPolicy(BOX_OBS, act_space, net_arch=[32, 32], shared=False)
    actor, critic = _ids(policy.actor_parameters()), _ids(policy.critic_parameters())
    assert not (actor & critic)
    assert actor | critic == _ids(policy.parameters())
    # the critic's loss reaches no actor parameter
    policy.value(make_obs(BOX_OBS)).pow(2).mean().backward()
    for p in policy.actor_parameters():
        assert p.grad is None or torch.all(p.grad == 0)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.critic_parameters())


def test_shared_policy_value_gradient_reaches_trunk_but_not_policy_head():
    torch.manual_seed(6)
    policy = ActorCriticPolicy(BOX_OBS, DISCRETE_ACT, net_arch=[16], shared=True)
    policy.value(make_obs(BOX_OBS)).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.trunk.parameters())
    assert all(p.grad is None for p in policy.pi_head.parameters())


def test_shared_policy_rejects_separate_architectures():
    with pytest.raises(ValueError):
        ActorCriticPolicy(BOX_OBS, DISCRETE_ACT, net_arch={"pi": [32], "vf": [64]}, shared=True)


def test_separate_architectures_from_dict():
    policy = ActorCriticPolicy(BOX_OBS, DISCRETE_ACT, net_arch={"pi": [8], "vf": [16, 16]})
    obs = make_obs(BOX_OBS)
    assert policy.value(obs).shape == (B,)
    assert policy.act(obs)[1].shape == (B,)
    n_critic_linear = sum(isinstance(m, torch.nn.Linear) for m in policy.vf_body.modules())
    n_actor_linear = sum(isinstance(m, torch.nn.Linear) for m in policy.pi_body.modules())
    assert (n_actor_linear, n_critic_linear) == (1, 2)


@pytest.mark.parametrize(
    "act_space,names",
    [
        (gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Discrete(3)]), ["Tuple", "MultiDiscrete"]),
        (gym.spaces.Dict({"a": gym.spaces.Discrete(2)}), ["Dict", "ActionWrapper"]),
        (gym.spaces.Box(0, 3, shape=(2,), dtype=np.int64), ["int64", "MultiDiscrete"]),
        (gym.spaces.Text(5), ["Text"]),
    ],
    ids=["tuple", "dict", "integer-box", "text"],
)
def test_unsupported_action_spaces_raise_env_error_naming_the_space(act_space, names):
    with pytest.raises(EnvError) as info:
        ActorCriticPolicy(BOX_OBS, act_space)
    message = str(info.value)
    for name in names:
        assert name in message, message
    assert isinstance(info.value, PGRLError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "obs_space,names",
    [
        (gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Box(-1, 1, (2,))]), ["Tuple", "FlattenObservation"]),
        (gym.spaces.Dict({"a": gym.spaces.Dict({"b": gym.spaces.Discrete(2)})}), ["'a'", "Dict", "FlattenObservation"]),
        (gym.spaces.Text(8), ["Text", "ObservationWrapper"]),
        (gym.spaces.Graph(gym.spaces.Box(-1, 1, (2,)), None), ["Graph"]),
        (gym.spaces.Sequence(gym.spaces.Discrete(3)), ["Sequence"]),
        (gym.spaces.Dict({"t": gym.spaces.Text(4)}), ["'t'", "Text"]),
    ],
    ids=["tuple", "nested-dict", "text", "graph", "sequence", "dict-of-text"],
)
def test_unsupported_observation_spaces_raise_env_error_naming_the_space_and_the_fix(obs_space, names):
    with pytest.raises(EnvError) as info:
        ActorCriticPolicy(obs_space, DISCRETE_ACT)
    for name in names:
        assert name in str(info.value), str(info.value)


@pytest.mark.parametrize("use_sde", [False, True])
@pytest.mark.parametrize("case", ["box-obs/discrete-act", "box-obs/box-act", "discrete-obs/box-act"])
def test_stacked_policy_runs_each_seed_as_its_lone_policy(case, use_sde):
    obs_space, act_space = SPACE_CASES[case]
    seeds = [0, 1, 2]
    policies = []
    for seed in seeds:
        torch.manual_seed(seed)
        policies.append(ActorCriticPolicy(obs_space, act_space, net_arch=[16, 16], use_sde=use_sde))
    generators = [torch.Generator().manual_seed(10 + s) for s in seeds]
    stacked = ActorCriticPolicy.stack(policies, generators)
    obs = torch.stack([make_obs(obs_space) for _ in seeds])  # [K, B, ...]
    actions, log_probs = stacked.act(obs)
    values = stacked.value(obs)
    ev_log_probs, entropy, ev_values = stacked.evaluate(obs, actions)
    for k, policy in enumerate(policies):
        torch.manual_seed(10 + seeds[k])  # the global stream where generators[k] started
        lone_actions, lone_log_probs = policy.act(obs[k])
        torch.testing.assert_close(actions[k], lone_actions, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(log_probs[k], lone_log_probs, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(values[k], policy.value(obs[k]), rtol=1e-5, atol=1e-5)
        lone = policy.evaluate(obs[k], actions[k])
        for got, expected in zip((ev_log_probs[k], entropy[k], ev_values[k]), lone, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # write_back copies seed k's (changed) parameters into policies[k]
    with torch.no_grad():
        for param in stacked.parameters():
            param.add_(1.0)
    stacked.write_back(policies)
    for k, policy in enumerate(policies):
        for name, param in stacked.named_parameters():
            assert torch.equal(dict(policy.named_parameters())[name], param[k])
