"""Unit tests for the loss functions: PPO's clipped surrogate and value loss, the A2C loss terms.

PPO (Schulman et al. 2017, eq. 7): L^CLIP = E[min(r A, clip(r, 1-eps, 1+eps) A)].  The clip only
removes the incentive to push r further outside [1-eps, 1+eps] in the direction that improves the
objective: with A > 0 the gradient vanishes for r > 1+eps (and not for r < 1-eps); with A < 0 it
vanishes for r < 1-eps (and not for r > 1+eps).  Inside the range the objective is r A.
"""

from __future__ import annotations

import math

import pytest
import torch

from pgrl.algos.a2c import advantage_actor_critic_loss
from pgrl.algos.ppo import clipped_surrogate, value_loss

F64 = torch.float64
EPS = 0.2

# (advantage, ratio, gradient is zero?) -- a batch mixing every case.
CASES = [
    (2.0, 1.5, True),  # A > 0, r > 1+eps: clipped, no incentive to increase r further
    (1.5, 1.1, False),  # A > 0, inside the range
    (0.7, 0.5, False),  # A > 0, r < 1-eps: the pessimistic min keeps the unclipped term
    (-1.0, 0.5, True),  # A < 0, r < 1-eps: clipped, no incentive to decrease r further
    (-2.5, 0.9, False),  # A < 0, inside the range
    (-0.3, 1.6, False),  # A < 0, r > 1+eps: unclipped term kept, gradient pulls r back
    (3.0, 0.95, False),  # A > 0, inside the range, r < 1
    (-1.2, 1.19, False),  # A < 0, inside the range, r > 1
]


def _surrogate_inputs(old_shift: float = 0.0):
    adv = torch.tensor([c[0] for c in CASES], dtype=F64)
    ratio = torch.tensor([c[1] for c in CASES], dtype=F64)
    old = torch.full_like(ratio, old_shift) + torch.linspace(-1.0, 1.0, len(CASES), dtype=F64) * old_shift
    log_probs = (torch.log(ratio) + old).requires_grad_(True)
    return log_probs, old, adv, ratio


@pytest.mark.parametrize("old_shift", [0.0, -1.3])
def test_clipped_surrogate_value_and_ratio(old_shift):
    log_probs, old, adv, ratio = _surrogate_inputs(old_shift)
    loss, got_ratio = clipped_surrogate(log_probs, old, adv, EPS)
    torch.testing.assert_close(got_ratio.detach(), ratio, rtol=0.0, atol=1e-12)
    # scalar reference: -mean over the batch of min(r A, clip(r) A)
    terms = []
    for a, r, _ in CASES:
        clipped_r = min(max(r, 1.0 - EPS), 1.0 + EPS)
        terms.append(min(r * a, clipped_r * a))
    expected = -sum(terms) / len(terms)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("old_shift", [0.0, -1.3])
def test_clipped_surrogate_gradient_elementwise(old_shift):
    log_probs, old, adv, ratio = _surrogate_inputs(old_shift)
    loss, _ = clipped_surrogate(log_probs, old, adv, EPS)
    (grad,) = torch.autograd.grad(loss, log_probs)
    B = len(CASES)
    for i, (a, r, zero) in enumerate(CASES):
        # d/d logp of -(r A)/B with r = exp(logp - old) is -A r / B
        expected = 0.0 if zero else -a * r / B
        assert grad[i].item() == pytest.approx(expected, abs=1e-12), (i, a, r)
        if not zero:
            assert abs(grad[i].item()) > 1e-3


def test_clipped_surrogate_gradient_direction_improves_objective_only_inside_incentive():
    # A gradient *descent* step on the loss raises log pi for A > 0 (until r > 1+eps) and lowers it
    # for A < 0 (until r < 1-eps).
    log_probs, old, adv, _ = _surrogate_inputs()
    loss, _ = clipped_surrogate(log_probs, old, adv, EPS)
    (grad,) = torch.autograd.grad(loss, log_probs)
    descent = -grad
    for i, (a, _, zero) in enumerate(CASES):
        if not zero:
            assert math.copysign(1.0, descent[i].item()) == math.copysign(1.0, a)


def test_clipped_surrogate_clip_range_controls_where_gradient_stops():
    # r = 1.1 with A > 0: inside the range for eps = 0.2 (gradient), clipped for eps = 0.05 (none).
    log_probs = torch.log(torch.tensor([1.1, 0.9], dtype=F64)).requires_grad_(True)
    old = torch.zeros(2, dtype=F64)
    adv = torch.tensor([1.0, -1.0], dtype=F64)
    (wide,) = torch.autograd.grad(clipped_surrogate(log_probs, old, adv, 0.2)[0], log_probs)
    (narrow,) = torch.autograd.grad(clipped_surrogate(log_probs, old, adv, 0.05)[0], log_probs)
    torch.testing.assert_close(wide, torch.tensor([-1.1 / 2, 0.9 / 2], dtype=F64), rtol=0.0, atol=1e-12)
    torch.testing.assert_close(narrow, torch.zeros(2, dtype=F64), rtol=0.0, atol=0.0)


def test_clipped_surrogate_at_ratio_one_is_policy_gradient():
    # At r = 1 (first epoch) the loss is -mean(A) and its gradient is -A / B.
    gen = torch.Generator().manual_seed(0)
    old = torch.randn(50, generator=gen, dtype=F64)
    adv = torch.randn(50, generator=gen, dtype=F64)
    log_probs = old.clone().requires_grad_(True)
    loss, ratio = clipped_surrogate(log_probs, old, adv, EPS)
    assert torch.all(ratio == 1.0)
    assert loss.item() == pytest.approx(-adv.mean().item(), abs=1e-12)
    (grad,) = torch.autograd.grad(loss, log_probs)
    torch.testing.assert_close(grad, -adv / 50, rtol=0.0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# PPO value loss
# ---------------------------------------------------------------------------------------------


def test_value_loss_without_clip_is_mse():
    gen = torch.Generator().manual_seed(1)
    values = torch.randn(20, generator=gen, dtype=F64)
    old_values = torch.randn(20, generator=gen, dtype=F64)
    returns = torch.randn(20, generator=gen, dtype=F64)
    expected = sum((r - v) ** 2 for r, v in zip(returns.tolist(), values.tolist(), strict=True)) / 20
    assert value_loss(values, old_values, returns, None).item() == pytest.approx(expected, abs=1e-12)


def test_value_loss_clipped_takes_max_of_clipped_and_unclipped():
    clip = 0.2
    # (value, old value, return) -> max((R - V)^2, (R - V_clipped)^2), V_clipped = old + clip(V - old)
    rows = [
        (1.0, 0.0, 2.0),  # V_clip = 0.2: unclipped 1.0, clipped 1.8^2 = 3.24 -> 3.24
        (1.0, 0.0, 0.5),  # unclipped 0.25, clipped 0.3^2 = 0.09 -> 0.25
        (1.0, 0.0, -1.0),  # unclipped 4.0, clipped 1.2^2 = 1.44 -> 4.0
        (-1.0, 0.0, -2.0),  # V_clip = -0.2: unclipped 1.0, clipped 1.8^2 = 3.24 -> 3.24
        (0.1, 0.0, 1.0),  # inside the clip range: both 0.81 -> 0.81
        (3.0, 2.5, 2.0),  # V_clip = 2.7: unclipped 1.0, clipped 0.49 -> 1.0
    ]
    expected_terms = [3.24, 0.25, 4.0, 3.24, 0.81, 1.0]
    values = torch.tensor([r[0] for r in rows], dtype=F64, requires_grad=True)
    old_values = torch.tensor([r[1] for r in rows], dtype=F64)
    returns = torch.tensor([r[2] for r in rows], dtype=F64)
    loss = value_loss(values, old_values, returns, clip)
    assert loss.item() == pytest.approx(sum(expected_terms) / len(rows), abs=1e-12)
    # Gradients: where the clipped term wins (rows 0 and 3) the value gets no gradient; elsewhere
    # d/dV (R - V)^2 / B = -2 (R - V) / B.
    (grad,) = torch.autograd.grad(loss, values)
    B = len(rows)
    expected_grad = [
        0.0,
        -2 * (0.5 - 1.0) / B,
        -2 * (-1.0 - 1.0) / B,
        0.0,
        -2 * (1.0 - 0.1) / B,
        -2 * (2.0 - 3.0) / B,
    ]
    torch.testing.assert_close(grad, torch.tensor(expected_grad, dtype=F64), rtol=0.0, atol=1e-12)


def test_value_loss_clip_never_below_mse():
    gen = torch.Generator().manual_seed(2)
    values = torch.randn(100, generator=gen, dtype=F64)
    old_values = values + 0.5 * torch.randn(100, generator=gen, dtype=F64)
    returns = torch.randn(100, generator=gen, dtype=F64)
    mse = value_loss(values, old_values, returns, None)
    clipped = value_loss(values, old_values, returns, 0.1)
    assert clipped.item() >= mse.item()
    assert clipped.item() > mse.item() + 1e-6  # the clip is active somewhere in this draw
    # a huge clip range is the plain MSE
    assert value_loss(values, old_values, returns, 1e9).item() == pytest.approx(mse.item(), abs=1e-12)


# ---------------------------------------------------------------------------------------------
# A2C loss
# ---------------------------------------------------------------------------------------------


def _a2c_example():
    log_probs = torch.tensor([-0.5, -1.0, -2.0], dtype=F64, requires_grad=True)
    entropy = torch.tensor([1.0, 0.8, 0.6], dtype=F64, requires_grad=True)
    values = torch.tensor([1.0, 2.0, 0.5], dtype=F64, requires_grad=True)
    returns = torch.tensor([2.0, 1.0, 1.5], dtype=F64)
    advantages = returns - values  # [1, -1, 1], built from the critic's output (has a graph)
    return log_probs, entropy, values, advantages, returns


def test_a2c_loss_terms_hand_example():
    log_probs, entropy, values, advantages, returns = _a2c_example()
    total, pg, vf, ent = advantage_actor_critic_loss(
        log_probs, entropy, values, advantages, returns, vf_coef=0.5, ent_coef=0.01
    )
    # policy: -mean(A log pi) = -(1*-0.5 + -1*-1.0 + 1*-2.0)/3 = -(-1.5)/3 = 0.5
    assert pg.item() == pytest.approx(0.5, abs=1e-12)
    # value: mean((R - V)^2) = (1 + 1 + 1)/3 = 1
    assert vf.item() == pytest.approx(1.0, abs=1e-12)
    # entropy: -mean(H) = -(1.0 + 0.8 + 0.6)/3 = -0.8
    assert ent.item() == pytest.approx(-0.8, abs=1e-12)
    # total: 0.5 + 0.5*1 + 0.01*(-0.8) = 0.992
    assert total.item() == pytest.approx(0.992, abs=1e-12)


def test_a2c_advantages_are_detached():
    log_probs, entropy, values, advantages, returns = _a2c_example()
    assert advantages.requires_grad  # the test is only meaningful if a path could exist
    _, pg, _, _ = advantage_actor_critic_loss(log_probs, entropy, values, advantages, returns, 0.5, 0.01)
    # No gradient reaches the critic through the policy term.
    (grad_values,) = torch.autograd.grad(pg, values, allow_unused=True)
    assert grad_values is None or torch.all(grad_values == 0)
    (grad_lp,) = torch.autograd.grad(pg, log_probs)
    torch.testing.assert_close(grad_lp, -advantages.detach() / 3, rtol=0.0, atol=1e-12)


def test_a2c_total_gradients():
    log_probs, entropy, values, advantages, returns = _a2c_example()
    vf_coef, ent_coef = 0.5, 0.01
    total, *_ = advantage_actor_critic_loss(
        log_probs, entropy, values, advantages, returns, vf_coef, ent_coef
    )
    g_lp, g_ent, g_v = torch.autograd.grad(total, (log_probs, entropy, values))
    B = 3
    torch.testing.assert_close(g_lp, torch.tensor([-1.0, 1.0, -1.0], dtype=F64) / B, rtol=0.0, atol=1e-12)
    torch.testing.assert_close(g_ent, torch.full((B,), -ent_coef / B, dtype=F64), rtol=0.0, atol=1e-12)
    # the critic's gradient is the value term's alone: vf_coef * -2 (R - V) / B
    expected_v = vf_coef * -2.0 * (returns - values.detach()) / B
    torch.testing.assert_close(g_v, expected_v, rtol=0.0, atol=1e-12)


def test_a2c_returns_are_detached():
    # Bootstrapped returns built from the critic must not be a second path into it.
    log_probs, entropy, values, _, _ = _a2c_example()
    returns = torch.tensor([1.0, 1.0, 1.0], dtype=F64) + 0.9 * values
    advantages = returns - values
    _, _, vf, _ = advantage_actor_critic_loss(log_probs, entropy, values, advantages, returns, 0.5, 0.0)
    (g_v,) = torch.autograd.grad(vf, values)
    expected = -2.0 * (returns.detach() - values.detach()) / 3
    torch.testing.assert_close(g_v, expected, rtol=0.0, atol=1e-12)


def test_ppo_loss_of_stacked_seeds_is_each_seeds_own():
    from pgrl.algos.ppo import PPOConfig, ppo_loss

    torch.manual_seed(0)
    c = PPOConfig(n_steps=8, batch_size=8, ent_coef=0.01)
    k, b = 3, 8
    inputs = [torch.randn(k, b) for _ in range(7)]
    kl_coef = torch.tensor([0.1, 0.2, 0.4])
    loss, terms, metrics = ppo_loss(c, *inputs, 0.2, 0.3, kl_coef)
    assert loss.shape == (k,) and all(v.shape == (k,) for v in (*terms.values(), *metrics.values()))
    for i in range(k):
        lone_loss, lone_terms, lone_metrics = ppo_loss(c, *(x[i] for x in inputs), 0.2, 0.3, float(kl_coef[i]))
        torch.testing.assert_close(loss[i], lone_loss)
        for key, value in lone_metrics.items():
            torch.testing.assert_close(metrics[key][i], value)
    # the total is the weighted sum of the terms
    expected = terms["policy"] + c.vf_coef * terms["value"] + c.ent_coef * terms["entropy"] + kl_coef * terms["kl"]
    torch.testing.assert_close(loss, expected)
