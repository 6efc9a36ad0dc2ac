"""Unit tests for pgrl.policies.distributions against torch.distributions and sampling statistics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as td

from pgrl.policies.distributions import Categorical, DiagGaussian

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def close(a, b, tol: float = 1e-10) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, rtol=0.0, atol=tol)


# ---------------------------------------------------------------------------------------------
# Categorical
# ---------------------------------------------------------------------------------------------


def random_logits(seed: int, B: int = 64, n: int = 6) -> torch.Tensor:
    # Unnormalized, shifted and scaled so some rows are peaked and some flat.
    g = gen(seed)
    return 3.0 * torch.randn(B, n, generator=g, dtype=F64) + 10.0 * torch.randn(B, 1, generator=g, dtype=F64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_categorical_log_prob_entropy_match_torch(seed):
    logits = random_logits(seed)
    actions = torch.randint(0, 6, (64,), generator=gen(seed + 100))
    ours, ref = Categorical(logits), td.Categorical(logits=logits)
    lp = ours.log_prob(actions)
    assert lp.shape == (64,) and lp.dtype == F64
    close(lp, ref.log_prob(actions))
    close(ours.entropy(), ref.entropy())
    close(ours.probs, ref.probs)
    # every action's log-prob, row by row
    for a in range(6):
        full = torch.full((64,), a, dtype=torch.long)
        close(ours.log_prob(full), ref.log_prob(full))


def test_categorical_log_probs_normalized_and_shift_invariant():
    logits = random_logits(3)
    d = Categorical(logits)
    close(d.probs.sum(-1), torch.ones(64, dtype=F64))
    shifted = Categorical(logits + torch.randn(64, 1, generator=gen(4), dtype=F64) * 50.0)
    close(shifted.logits, d.logits, 1e-9)


def test_categorical_log_prob_accepts_other_integer_and_float_actions():
    logits = random_logits(5, B=8, n=4)
    actions = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    expected = td.Categorical(logits=logits).log_prob(actions)
    close(Categorical(logits).log_prob(actions.to(torch.int32)), expected)
    close(Categorical(logits).log_prob(actions.to(F64)), expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_categorical_kl_matches_torch(seed):
    p_logits, q_logits = random_logits(seed), random_logits(seed + 50)
    ours = Categorical(p_logits).kl(Categorical(q_logits))
    ref = td.kl_divergence(td.Categorical(logits=p_logits), td.Categorical(logits=q_logits))
    assert ours.shape == (64,)
    close(ours, ref, 1e-9)
    # KL(p || p) = 0 and KL >= 0
    close(Categorical(p_logits).kl(Categorical(p_logits)), torch.zeros(64, dtype=F64))
    assert torch.all(ours >= -1e-12)


def test_categorical_entropy_hand_values():
    # uniform over 4: log 4; a [1/2, 1/4, 1/4] distribution: 1.5 log 2
    d = Categorical(torch.log(torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.5, 0.25, 0.25, 1e-300]], dtype=F64)))
    close(d.entropy(), torch.tensor([math.log(4.0), 1.5 * math.log(2.0)], dtype=F64), 1e-12)


def test_categorical_mode_is_argmax():
    logits = torch.tensor([[0.1, 2.0, -1.0], [5.0, 4.9, 0.0], [-3.0, -2.0, -1.0]], dtype=F64)
    assert Categorical(logits).mode().tolist() == [1, 0, 2]


def test_categorical_gradient_matches_torch():
    logits = random_logits(7, B=16, n=5)
    actions = torch.randint(0, 5, (16,), generator=gen(8))
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    (Categorical(a).log_prob(actions).sum() + Categorical(a).entropy().sum()).backward()
    dist = td.Categorical(logits=b)
    (dist.log_prob(actions).sum() + dist.entropy().sum()).backward()
    close(a.grad, b.grad, 1e-9)


def test_categorical_detach_cuts_the_graph():
    logits = random_logits(9, B=4, n=3).requires_grad_(True)
    d = Categorical(logits).detach()
    assert not d.logits.requires_grad
    close(d.logits, Categorical(logits).logits.detach())


def test_categorical_gumbel_max_sample_frequencies():
    # 200k draws with a fixed seed.  Each frequency has standard error sqrt(p(1-p)/n) <= 0.00112;
    # the tolerance 0.006 is > 5 standard errors, so the test is deterministic-in-practice yet
    # would catch e.g. sampling proportionally to logits or a wrong noise sign (errors >> 0.01).
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    n = 200_000
    torch.manual_seed(1234)
    samples = Categorical(torch.log(probs).expand(n, 4)).sample()
    assert samples.shape == (n,) and samples.dtype == torch.int64
    assert samples.min() >= 0 and samples.max() <= 3
    freqs = torch.bincount(samples, minlength=4).double() / n
    torch.testing.assert_close(freqs, probs, rtol=0.0, atol=0.006)
    # Chi-square statistic with 3 degrees of freedom: P(chi2_3 > 25) < 2e-5.
    counts = torch.bincount(samples, minlength=4).double()
    chi2 = ((counts - n * probs) ** 2 / (n * probs)).sum()
    assert chi2 < 25.0


def test_categorical_samples_each_row_from_its_own_logits():
    # Two rows with opposite preferences, 100k draws each, float32 (the dtype the policy uses).
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.05, 0.15, 0.8]])
    n = 100_000
    torch.manual_seed(99)
    samples = Categorical(torch.log(probs).repeat(n, 1)).sample().reshape(n, 2)
    for row in range(2):
        freqs = torch.bincount(samples[:, row], minlength=3).double() / n
        torch.testing.assert_close(freqs, probs[row].double(), rtol=0.0, atol=0.008)
    # A near-deterministic row is always sampled at its mode.
    peaked = Categorical(torch.tensor([[0.0, 40.0, 0.0]]).expand(10_000, 3)).sample()
    assert torch.all(peaked == 1)


# ---------------------------------------------------------------------------------------------
# DiagGaussian
# ---------------------------------------------------------------------------------------------


def gaussian_params(seed: int, B: int = 32, d: int = 3, per_row_std: bool = False):
    g = gen(seed)
    mean = torch.randn(B, d, generator=g, dtype=F64) * 2.0
    std_shape = (B, d) if per_row_std else (d,)
    log_std = torch.randn(std_shape, generator=g, dtype=F64) * 0.7
    actions = mean + torch.randn(B, d, generator=g, dtype=F64) * 3.0
    return mean, log_std, actions


def torch_gaussian(mean, log_std):
    return td.Independent(td.Normal(mean, log_std.exp().expand_as(mean)), 1)


@pytest.mark.parametrize("per_row_std", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_log_prob_entropy_match_torch(seed, per_row_std):
    mean, log_std, actions = gaussian_params(seed, per_row_std=per_row_std)
    ours, ref = DiagGaussian(mean, log_std), torch_gaussian(mean, log_std)
    lp = ours.log_prob(actions)
    assert lp.shape == (32,) and lp.dtype == F64  # summed over the action dimensions
    close(lp, ref.log_prob(actions))
    ent = ours.entropy()
    assert ent.shape == (32,)
    close(ent, ref.entropy().expand(32))


def test_gaussian_log_prob_is_sum_of_per_dimension_normal_log_probs():
    mean, log_std, actions = gaussian_params(2, B=10, d=4)
    per_dim = td.Normal(mean, log_std.exp()).log_prob(actions)  # [B, d]
    assert per_dim.shape == (10, 4)
    close(DiagGaussian(mean, log_std).log_prob(actions), per_dim.sum(-1))
    # and by hand for one element: -0.5 z^2 - log sigma - 0.5 log(2 pi), summed over d
    m, s, a = mean[0].tolist(), log_std.exp().tolist(), actions[0].tolist()
    by_hand = sum(
        -0.5 * ((ai - mi) / si) ** 2 - math.log(si) - 0.5 * math.log(2 * math.pi)
        for ai, mi, si in zip(a, m, s, strict=True)
    )
    assert DiagGaussian(mean, log_std).log_prob(actions)[0].item() == pytest.approx(by_hand, abs=1e-10)


def test_gaussian_one_dimensional_actions():
    mean = torch.tensor([[0.0], [1.0]], dtype=F64)
    log_std = torch.tensor([0.0], dtype=F64)
    actions = torch.tensor([[0.0], [3.0]], dtype=F64)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    expected = torch.tensor([-half_log_2pi, -2.0 - half_log_2pi], dtype=F64)
    close(DiagGaussian(mean, log_std).log_prob(actions), expected)
    close(DiagGaussian(mean, log_std).entropy(), torch.full((2,), 0.5 + half_log_2pi, dtype=F64))


@pytest.mark.parametrize("per_row_std", [False, True])
def test_gaussian_kl_matches_torch(per_row_std):
    m1, s1, _ = gaussian_params(3, per_row_std=per_row_std)
    m2, s2, _ = gaussian_params(4, per_row_std=per_row_std)
    ours = DiagGaussian(m1, s1).kl(DiagGaussian(m2, s2))
    assert ours.shape == (32,)
    close(ours, td.kl_divergence(torch_gaussian(m1, s1), torch_gaussian(m2, s2)), 1e-9)
    close(DiagGaussian(m1, s1).kl(DiagGaussian(m1, s1)), torch.zeros(32, dtype=F64))
    # asymmetric in general
    assert not torch.allclose(ours, DiagGaussian(m2, s2).kl(DiagGaussian(m1, s1)))


def test_gaussian_gradients_match_torch():
    mean, log_std, actions = gaussian_params(5, B=8, d=2)
    m1, s1 = mean.clone().requires_grad_(True), log_std.clone().requires_grad_(True)
    m2, s2 = mean.clone().requires_grad_(True), log_std.clone().requires_grad_(True)
    d1 = DiagGaussian(m1, s1)
    (d1.log_prob(actions).sum() + d1.entropy().sum()).backward()
    d2 = torch_gaussian(m2, s2)
    (d2.log_prob(actions).sum() + d2.entropy().sum()).backward()
    close(m1.grad, m2.grad)
    close(s1.grad, s2.grad)
    assert s1.grad.shape == (2,)  # the state-independent log-std keeps its [d] shape


def test_gaussian_mode_is_mean_and_detach_cuts_the_graph():
    mean, log_std, _ = gaussian_params(6, B=5, d=2)
    mean.requires_grad_(True)
    log_std.requires_grad_(True)
    d = DiagGaussian(mean, log_std)
    assert torch.equal(d.mode(), mean)
    det = d.detach()
    assert not det.mean.requires_grad and not det.log_std.requires_grad
    assert torch.equal(det.mean, mean.detach())


def test_gaussian_sample_statistics():
    n = 200_000
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    log_std = torch.tensor([0.0, -1.0, 0.7], dtype=F64)
    std = log_std.exp()
    torch.manual_seed(4321)
    samples = DiagGaussian(mean.expand(n, 3), log_std).sample()
    assert samples.shape == (n, 3) and samples.dtype == F64
    # standard error of the mean: std / sqrt(n); of the std: ~ std / sqrt(2 n).  5 sigma bounds.
    se_mean = std / math.sqrt(n)
    se_std = std / math.sqrt(2 * n)
    assert torch.all((samples.mean(0) - mean).abs() < 5 * se_mean)
    assert torch.all((samples.std(0) - std).abs() < 5 * se_std)
    # dimensions are independent: off-diagonal correlations ~ N(0, 1/n)
    corr = torch.corrcoef(samples.T)
    off = corr[~torch.eye(3, dtype=torch.bool)]
    assert torch.all(off.abs() < 5 / math.sqrt(n))


def test_gaussian_sample_uses_each_rows_mean():
    torch.manual_seed(0)
    mean = torch.tensor([[100.0, -100.0], [-100.0, 100.0]], dtype=F64).repeat(1000, 1)
    samples = DiagGaussian(mean, torch.tensor([-3.0, -3.0], dtype=F64)).sample()
    assert (samples - mean).abs().max() < 1.0


def test_sampling_with_generators_draws_each_block_from_its_own_stream():
    from pgrl.policies.distributions import Categorical, DiagGaussian

    logits, mean = torch.randn(3, 5, 4), torch.randn(3, 5, 2)
    for make in (lambda: Categorical(logits), lambda: DiagGaussian(mean, torch.zeros(2))):
        together = make().sample([torch.Generator().manual_seed(s) for s in range(3)])
        for k in range(3):
            torch.manual_seed(k)
            dist = make()
            lone = Categorical(logits[k]) if isinstance(dist, Categorical) else DiagGaussian(mean[k], torch.zeros(2))
            assert torch.equal(together[k], lone.sample())
