"""TRPO's numerical pieces: conjugate gradient and the Fisher-vector product."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from pgrl.algos.trpo import fisher_vector_product
from pgrl.optim import conjugate_gradient, flat_grad, flat_params, set_flat_params
from pgrl.policies.actor_critic import ActorCriticPolicy


def test_conjugate_gradient_solves_spd_system():
    gen = torch.Generator().manual_seed(0)
    n = 12
    m = torch.randn(n, n, generator=gen, dtype=torch.float64)
    a = m @ m.T + n * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, n_iters=n, residual_tol=1e-24)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-10)


def test_conjugate_gradient_few_iterations_and_zero_rhs():
    a = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    # three distinct eigenvalues: exact after three iterations
    torch.testing.assert_close(conjugate_gradient(lambda v: a @ v, b, n_iters=3), b / torch.diag(a))
    # one iteration is the steepest-descent step along b
    x1 = conjugate_gradient(lambda v: a @ v, b, n_iters=1)
    torch.testing.assert_close(x1, (b @ b) / (b @ a @ b) * b)
    zero = torch.zeros(3, dtype=torch.float64)
    assert torch.equal(conjugate_gradient(lambda v: a @ v, zero), zero)
    # converging before n_iters stops cleanly (no 0/0 on an exact solution)
    assert torch.isfinite(conjugate_gradient(lambda v: a @ v, b, n_iters=10, residual_tol=0.0)).all()


def test_flat_params_round_trip_keeps_storage():
    layer = nn.Linear(3, 2)
    params = list(layer.parameters())
    storage = [p.data_ptr() for p in params]
    flat = flat_params(params)
    assert flat.shape == (8,)
    set_flat_params(params, flat + 1.0)
    torch.testing.assert_close(flat_params(params), flat + 1.0)
    assert [p.data_ptr() for p in params] == storage
    flat.zero_()  # the parameters are not views of the vector they came from
    torch.testing.assert_close(flat_params(params), flat_params(params))
    assert flat_params(params).abs().sum() > 0
    with pytest.raises(ValueError, match="9 values"):
        set_flat_params(params, torch.zeros(9))


def test_flat_grad_zero_for_unused_parameters():
    used, unused = nn.Parameter(torch.tensor([2.0, 3.0])), nn.Parameter(torch.ones(3))
    g = flat_grad((used**2).sum(), [used, unused])
    torch.testing.assert_close(g, torch.tensor([4.0, 6.0, 0.0, 0.0, 0.0]))


class _Distribution(nn.Module):
    """forward(obs) -> the policy's action distribution, so torch.func.functional_call can swap params."""

    def __init__(self, policy: ActorCriticPolicy):
        super().__init__()
        self.policy = policy

    def forward(self, obs):
        return self.policy.distribution(obs)


@pytest.mark.parametrize(
    "action_space",
    [gym.spaces.Discrete(3), gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)],
    ids=["categorical", "gaussian"],
)
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_fisher_vector_product_is_kl_hessian(action_space, damping):
    """(policies compute in float32: obs are cast in the feature layer)"""
    torch.manual_seed(0)
    obs_space = gym.spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
    policy = ActorCriticPolicy(obs_space, action_space, net_arch=[4], log_std_init=-0.3)
    # larger output weights than the 0.01-gain init so the policy is far from uniform
    with torch.no_grad():
        policy.pi_head[0].weight.normal_()
    obs = torch.randn(7, 3)
    params = policy.actor_parameters()
    name_of = {id(p): n for n, p in _Distribution(policy).named_parameters()}
    names = [name_of[id(p)] for p in params]  # in actor_parameters() order, the flat layout
    shapes = [p.shape for p in params]
    theta = flat_params(params)
    old_dist = policy.distribution(obs).detach()

    def mean_kl_of(flat):
        chunks = torch.split(flat, [int(np.prod(s)) for s in shapes])
        swapped = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        dist = torch.func.functional_call(_Distribution(policy), swapped, (obs,))
        return old_dist.kl(dist).mean()

    hessian = torch.autograd.functional.hessian(mean_kl_of, theta)
    assert hessian.shape == (theta.numel(), theta.numel())
    fvp = fisher_vector_product(old_dist.kl(policy.distribution(obs)).mean(), params, damping)
    for _ in range(3):
        v = torch.randn(theta.numel())
        torch.testing.assert_close(fvp(v), hessian @ v + damping * v, rtol=1e-4, atol=1e-5)
    # the Fisher matrix is positive semi-definite (float32 round-off aside)
    assert torch.linalg.eigvalsh(hessian.double()).min() > -1e-5
