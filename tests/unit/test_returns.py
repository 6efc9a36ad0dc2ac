"""Unit tests for pgrl.returns: hand values, identities, loop-vs-reference, shape checks.

Conventions under test (module docstring of pgrl.returns): inputs are time-major [T, N];
next_values[t] is V of the observation step t reached *before* any reset; terminated[t] means no
bootstrap; truncated[t] (and not terminated) ends the episode but bootstraps from next_values[t];
the last rollout step bootstraps from next_values[T-1].

Expected values are computed by hand (explicit arithmetic below) or by the pure-Python scalar
references in this file, never copied from the implementation.
"""

from __future__ import annotations

import pytest
import torch

from pgrl.returns import discount_weights, gae, n_step_returns, reward_to_go, td_errors

F64 = torch.float64


def t64(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64)


def flags(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


# ---------------------------------------------------------------------------------------------
# Independent pure-Python scalar references (per environment, explicit branches, Python floats)
# ---------------------------------------------------------------------------------------------


def ref_reward_to_go(r, dones, g):
    T, N = len(r), len(r[0])
    out = [[0.0] * N for _ in range(T)]
    for n in range(N):
        following = 0.0
        for t in reversed(range(T)):
            if dones[t][n] or t == T - 1:
                following = 0.0
            out[t][n] = r[t][n] + g * following
            following = out[t][n]
    return out


def ref_n_step_returns(r, nv, term, trunc, g):
    T, N = len(r), len(r[0])
    out = [[0.0] * N for _ in range(T)]
    for n in range(N):
        for t in reversed(range(T)):
            if term[t][n]:
                out[t][n] = r[t][n]
            elif trunc[t][n] or t == T - 1:
                out[t][n] = r[t][n] + g * nv[t][n]
            else:
                out[t][n] = r[t][n] + g * out[t + 1][n]
    return out


def ref_td_errors(r, v, nv, term, g):
    T, N = len(r), len(r[0])
    return [[r[t][n] + (0.0 if term[t][n] else g * nv[t][n]) - v[t][n] for n in range(N)] for t in range(T)]


def ref_gae(r, v, nv, term, trunc, g, lam):
    T, N = len(r), len(r[0])
    out = [[0.0] * N for _ in range(T)]
    for n in range(N):
        for t in reversed(range(T)):
            delta = r[t][n] + (0.0 if term[t][n] else g * nv[t][n]) - v[t][n]
            episode_ends_or_leaves_storage = term[t][n] or trunc[t][n] or t == T - 1
            following = 0.0 if episode_ends_or_leaves_storage else out[t + 1][n]
            out[t][n] = delta + g * lam * following
    return out


def ref_discount_weights(dones, g):
    T, N = len(dones), len(dones[0])
    out = [[0.0] * N for _ in range(T)]
    for n in range(N):
        k = 0
        for t in range(T):
            out[t][n] = g**k
            k = 0 if dones[t][n] else k + 1
    return out


def random_rollout(seed: int, T: int = 37, N: int = 5, consistent: bool = False):
    """Random float64 rollout with random terminations/truncations (some steps both)."""
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.randn(T, N, generator=gen, dtype=F64)
    values = torch.randn(T, N, generator=gen, dtype=F64)
    next_values = torch.randn(T, N, generator=gen, dtype=F64)
    terminated = torch.rand(T, N, generator=gen) < 0.12
    truncated = torch.rand(T, N, generator=gen) < 0.08
    if consistent:
        # Where step t+1 continues the episode of step t, V(s'_t) is V(s_{t+1}) = values[t+1].
        ended = terminated | truncated
        next_values[:-1] = torch.where(ended[:-1], next_values[:-1], values[1:])
    # The random draw must actually exercise every case.
    assert terminated[:-1].any() and (truncated[:-1] & ~terminated[:-1]).any()
    return rewards, values, next_values, terminated, truncated


def close(a: torch.Tensor, b, tol: float = 1e-10) -> None:
    b = b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=a.dtype)
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b.to(a.dtype), rtol=0.0, atol=tol)


# ---------------------------------------------------------------------------------------------
# Reference example: rewards [1,1,1,1,10], values [5,5.5,6,6.5,7], terminates at the last step.
# gamma = 0.99.  T = 5, N = 1.
# ---------------------------------------------------------------------------------------------

GAMMA_REF = 0.99
REF_REWARDS = [1.0, 1.0, 1.0, 1.0, 10.0]
REF_VALUES = [5.0, 5.5, 6.0, 6.5, 7.0]

# one-step TD errors delta_t = r_t + 0.99 * V_{t+1} - V_t, and delta_4 = 10 - 7 (terminal)
REF_DELTAS = [
    1.0 + 0.99 * 5.5 - 5.0,  # 1.445
    1.0 + 0.99 * 6.0 - 5.5,  # 1.44
    1.0 + 0.99 * 6.5 - 6.0,  # 1.435
    1.0 + 0.99 * 7.0 - 6.5,  # 1.43
    10.0 - 7.0,  # 3.0
]


def _ref_example_advantages_by_hand(lam: float) -> list[float]:
    """A_t = delta_t + (gamma * lam) * A_{t+1}, A_4 = delta_4, written out step by step."""
    gl = GAMMA_REF * lam
    a4 = REF_DELTAS[4]
    a3 = REF_DELTAS[3] + gl * a4
    a2 = REF_DELTAS[2] + gl * a3
    a1 = REF_DELTAS[1] + gl * a2
    a0 = REF_DELTAS[0] + gl * a1
    return [a0, a1, a2, a3, a4]


# The same numbers typed in as decimals, computed on paper:
#   lambda = 0:    the TD errors themselves.
#   lambda = 0.5:  gamma*lambda = 0.495
#       A3 = 1.43 + 0.495*3 = 2.915;  A2 = 1.435 + 0.495*2.915 = 2.877925
#       A1 = 1.44 + 0.495*2.877925 = 2.864572875;  A0 = 1.445 + 0.495*2.864572875 = 2.862963573125
#   lambda = 0.95: gamma*lambda = 0.9405
#       A3 = 1.43 + 0.9405*3 = 4.2515;  A2 = 1.435 + 0.9405*4.2515 = 5.43353575
#       A1 = 1.44 + 0.9405*5.43353575 = 6.550240372875
#       A0 = 1.445 + 0.9405*6.550240372875 = 7.6055010706889375
#   lambda = 1:    Monte-Carlo returns minus values; G4 = 10, G3 = 1 + 0.99*10 = 10.9,
#       G2 = 1 + 0.99*10.9 = 11.791, G1 = 1 + 0.99*11.791 = 12.67309,
#       G0 = 1 + 0.99*12.67309 = 13.5463591  ->  A = G - V
REF_EXPECTED = {
    0.0: [1.445, 1.44, 1.435, 1.43, 3.0],
    0.5: [2.862963573125, 2.864572875, 2.877925, 2.915, 3.0],
    0.95: [7.6055010706889375, 6.550240372875, 5.43353575, 4.2515, 3.0],
    1.0: [13.5463591 - 5.0, 12.67309 - 5.5, 11.791 - 6.0, 10.9 - 6.5, 10.0 - 7.0],
}


def _ref_example_tensors(next_value_after_terminal: float = 0.0):
    rewards = t64([[x] for x in REF_REWARDS])
    values = t64([[x] for x in REF_VALUES])
    # V(s_{t+1}) for t < 4; the final observation after termination gets an arbitrary value
    # that must be ignored.
    next_values = t64([[x] for x in REF_VALUES[1:] + [next_value_after_terminal]])
    terminated = flags([[False]] * 4 + [[True]])
    truncated = flags([[False]] * 5)
    return rewards, values, next_values, terminated, truncated


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_gae_reference_example(lam):
    # Self-consistency of the two hand computations above (typed decimals vs. step formulas).
    for typed, stepped in zip(REF_EXPECTED[lam], _ref_example_advantages_by_hand(lam), strict=True):
        assert typed == pytest.approx(stepped, abs=1e-12)
    rewards, values, next_values, terminated, truncated = _ref_example_tensors(123.0)
    adv = gae(rewards, values, next_values, terminated, truncated, GAMMA_REF, lam)
    assert adv.shape == (5, 1) and adv.dtype == F64
    close(adv[:, 0], REF_EXPECTED[lam])


def test_reference_example_monte_carlo_returns():
    rewards, values, next_values, terminated, truncated = _ref_example_tensors(-55.0)
    expected_returns = [13.5463591, 12.67309, 11.791, 10.9, 10.0]
    close(n_step_returns(rewards, next_values, terminated, truncated, GAMMA_REF)[:, 0], expected_returns)
    close(reward_to_go(rewards, terminated, GAMMA_REF)[:, 0], expected_returns)
    close(td_errors(rewards, values, next_values, terminated, GAMMA_REF)[:, 0], REF_DELTAS)


# ---------------------------------------------------------------------------------------------
# Hand-computed multi-env case: T = 4, N = 3, gamma = 0.9, lambda = 0.5 (gamma*lambda = 0.45)
#   env 0: terminated at t=1 (mid-batch), a new episode runs t=2..3 and leaves storage at t=3.
#   env 1: truncated at t=2 (bootstraps from the *final* observation's value 5.0, not from
#          values[3] = 0.5 which belongs to the reset observation), new episode at t=3.
#   env 2: no episode end; only the last-step bootstrap.
# ---------------------------------------------------------------------------------------------

G, LAM = 0.9, 0.5
R = [[1.0, 2.0, 0.5], [3.0, -1.0, 1.0], [0.0, 4.0, 2.0], [2.0, 1.0, -3.0]]
V = [[0.5, 1.0, 2.0], [1.5, 0.0, 1.0], [2.0, 3.0, -1.0], [1.0, 0.5, 0.0]]
NV = [
    [1.5, 0.0, 1.0],  # = V[1]
    [7.0, 3.0, -1.0],  # env 0 terminal obs value 7.0 (must be ignored); others = V[2]
    [1.0, 5.0, 0.0],  # env 1 final obs of the truncated episode: 5.0; others = V[3]
    [4.0, 2.0, -2.0],  # bootstrap values at the end of the rollout
]
TERM = [[False, False, False], [True, False, False], [False, False, False], [False, False, False]]
TRUNC = [[False, False, False], [False, False, False], [False, True, False], [False, False, False]]


def _hand_case():
    return t64(R), t64(V), t64(NV), flags(TERM), flags(TRUNC)


def test_n_step_returns_hand_multi_env():
    rewards, _, next_values, terminated, truncated = _hand_case()
    # env 0: R1 = 3 (terminal), R0 = 1 + .9*3; R3 = 2 + .9*4, R2 = 0 + .9*R3
    # env 1: R3 = 1 + .9*2; R2 = 4 + .9*5 (truncation bootstrap); R1 = -1 + .9*R2; R0 = 2 + .9*R1
    # env 2: R3 = -3 + .9*(-2); R2 = 2 + .9*R3; R1 = 1 + .9*R2; R0 = .5 + .9*R1
    expected = [
        [3.7, 7.985, -0.4792],
        [3.0, 6.65, -1.088],
        [5.04, 8.5, -2.32],
        [5.6, 2.8, -4.8],
    ]
    close(n_step_returns(rewards, next_values, terminated, truncated, G), expected)


def test_gae_hand_multi_env():
    rewards, values, next_values, terminated, truncated = _hand_case()
    # deltas: env0 [1+.9*1.5-.5, 3-1.5, 0+.9*1-2, 2+.9*4-1]        = [1.85, 1.5, -1.1, 4.6]
    #         env1 [2+.9*0-1, -1+.9*3-0, 4+.9*5-3, 1+.9*2-.5]       = [1, 1.7, 5.5, 2.3]
    #         env2 [.5+.9*1-2, 1-.9*1-1, 2+0+1, -3-.9*2-0]          = [-.6, -.9, 3, -4.8]
    expected_deltas = [[1.85, 1.0, -0.6], [1.5, 1.7, -0.9], [-1.1, 5.5, 3.0], [4.6, 2.3, -4.8]]
    close(td_errors(rewards, values, next_values, terminated, G), expected_deltas)
    # advantages (c = 0.45): env0 A3 = 4.6, A2 = -1.1 + .45*4.6 = .97, A1 = 1.5, A0 = 1.85 + .45*1.5
    #                        env1 A3 = 2.3, A2 = 5.5, A1 = 1.7 + .45*5.5 = 4.175, A0 = 1 + .45*4.175
    #                        env2 A3 = -4.8, A2 = 3 - .45*4.8 = .84, A1 = -.9 + .45*.84 = -.522,
    #                             A0 = -.6 - .45*.522 = -.8349
    expected = [[2.525, 2.87875, -0.8349], [1.5, 4.175, -0.522], [0.97, 5.5, 0.84], [4.6, 2.3, -4.8]]
    close(gae(rewards, values, next_values, terminated, truncated, G, LAM), expected)


def test_reward_to_go_hand_multi_env():
    rewards = t64(R)
    dones = flags(TERM) | flags(TRUNC)
    # env0: G1 = 3, G0 = 1 + .9*3; G3 = 2 (never bootstraps), G2 = 0 + .9*2
    # env1: G3 = 1, G2 = 4 (truncation treated as the end), G1 = -1 + .9*4, G0 = 2 + .9*2.6
    # env2: G3 = -3, G2 = 2 - 2.7, G1 = 1 - .63, G0 = .5 + .9*.37
    expected = [[3.7, 4.34, 0.833], [3.0, 2.6, 0.37], [1.8, 4.0, -0.7], [2.0, 1.0, -3.0]]
    close(reward_to_go(rewards, dones, G), expected)


def test_discount_weights_restart_after_each_done():
    dones = flags(TERM) | flags(TRUNC)
    w = discount_weights(dones, G)
    assert w.shape == (4, 3)
    expected = [[1.0, 1.0, 1.0], [0.9, 0.9, 0.9], [1.0, 0.81, 0.81], [0.9, 1.0, 0.729]]
    torch.testing.assert_close(w.double(), t64(expected), rtol=1e-6, atol=0.0)
    # A done at every step keeps every weight at gamma**0 = 1; no done gives gamma**t.
    every = discount_weights(torch.ones(5, 2, dtype=torch.bool), 0.5).double()
    assert torch.equal(every, torch.ones(5, 2, dtype=F64))
    none = discount_weights(torch.zeros(4, 1, dtype=torch.bool), 0.5).double()
    assert torch.equal(none[:, 0], t64([1.0, 0.5, 0.25, 0.125]))


def test_terminated_next_value_is_ignored_truncated_next_value_is_used():
    rewards, values, next_values, terminated, truncated = _hand_case()
    base_gae = gae(rewards, values, next_values, terminated, truncated, G, LAM)
    base_ret = n_step_returns(rewards, next_values, terminated, truncated, G)

    changed = next_values.clone()
    changed[1, 0] = 1e6  # env 0's terminal observation: no effect anywhere
    assert torch.equal(gae(rewards, values, changed, terminated, truncated, G, LAM), base_gae)
    assert torch.equal(n_step_returns(rewards, changed, terminated, truncated, G), base_ret)

    changed = next_values.clone()
    changed[2, 1] += 1.0  # env 1's truncated final observation: shifts steps 0..2 of env 1 only
    diff_ret = n_step_returns(rewards, changed, terminated, truncated, G) - base_ret
    diff_gae = gae(rewards, values, changed, terminated, truncated, G, LAM) - base_gae
    expected_ret = torch.zeros(4, 3, dtype=F64)
    expected_ret[:3, 1] = t64([G**3, G**2, G])
    expected_gae = torch.zeros(4, 3, dtype=F64)
    expected_gae[:3, 1] = t64([G * (G * LAM) ** 2, G * (G * LAM), G])
    close(diff_ret, expected_ret, 1e-9)
    close(diff_gae, expected_gae, 1e-9)


def test_terminated_and_truncated_together_means_no_bootstrap():
    rewards = t64([[1.0], [2.0]])
    values = t64([[0.5], [0.25]])
    next_values = t64([[100.0], [3.0]])
    terminated = flags([[True], [False]])
    truncated = flags([[True], [False]])
    # step 0: ends, terminal -> R0 = 1, A0 = 1 - .5; step 1: R1 = 2 + .9*3, A1 = 2 + 2.7 - .25
    close(n_step_returns(rewards, next_values, terminated, truncated, G), [[1.0], [4.7]])
    close(gae(rewards, values, next_values, terminated, truncated, G, LAM), [[0.5], [4.45]])


def test_last_step_bootstraps_even_when_not_done():
    rewards = t64([[1.0, 1.0]])
    values = t64([[0.0, 0.0]])
    next_values = t64([[10.0, 10.0]])
    terminated = flags([[False, True]])
    truncated = flags([[False, False]])
    close(n_step_returns(rewards, next_values, terminated, truncated, 0.5), [[6.0, 1.0]])
    close(gae(rewards, values, next_values, terminated, truncated, 0.5, 0.9), [[6.0, 1.0]])


def test_float_flags_behave_like_bool_flags():
    rewards, values, next_values, terminated, truncated = random_rollout(3)
    a = gae(rewards, values, next_values, terminated, truncated, 0.97, 0.9)
    b = gae(rewards, values, next_values, terminated.double(), truncated.to(torch.float32), 0.97, 0.9)
    assert torch.equal(a, b)


def test_inputs_are_not_modified():
    inputs = random_rollout(4)
    copies = [x.clone() for x in inputs]
    rewards, values, next_values, terminated, truncated = inputs
    gae(rewards, values, next_values, terminated, truncated, 0.9, 0.8)
    n_step_returns(rewards, next_values, terminated, truncated, 0.9)
    reward_to_go(rewards, terminated | truncated, 0.9)
    discount_weights(terminated, 0.9)
    for x, c in zip(inputs, copies, strict=True):
        assert torch.equal(x, c)


# ---------------------------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_lambda0_equals_td_errors(seed):
    rewards, values, next_values, terminated, truncated = random_rollout(seed, consistent=True)
    adv = gae(rewards, values, next_values, terminated, truncated, 0.97, 0.0)
    close(adv, td_errors(rewards, values, next_values, terminated, 0.97))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_lambda1_equals_n_step_returns_minus_values(seed):
    rewards, values, next_values, terminated, truncated = random_rollout(seed, consistent=True)
    adv = gae(rewards, values, next_values, terminated, truncated, 0.97, 1.0)
    returns = n_step_returns(rewards, next_values, terminated, truncated, 0.97)
    close(adv, returns - values)


def test_gae_lambda1_identity_needs_consistent_next_values():
    # Guard on the identity test above: with inconsistent next_values the two differ, so that
    # test is not vacuous.
    rewards, values, next_values, terminated, truncated = random_rollout(0, consistent=False)
    adv = gae(rewards, values, next_values, terminated, truncated, 0.97, 1.0)
    returns = n_step_returns(rewards, next_values, terminated, truncated, 0.97)
    assert (adv - (returns - values)).abs().max() > 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reward_to_go_equals_n_step_returns_without_bootstrap(seed):
    rewards, _, _, terminated, truncated = random_rollout(seed)
    dones = terminated | truncated
    zeros = torch.zeros_like(rewards)
    no_flags = torch.zeros_like(dones)
    rtg = reward_to_go(rewards, dones, 0.95)
    close(rtg, n_step_returns(rewards, zeros, dones, no_flags, 0.95))
    # With zero bootstrap values, "truncated" at the episode ends gives the same thing.
    close(rtg, n_step_returns(rewards, zeros, no_flags, dones, 0.95))


# ---------------------------------------------------------------------------------------------
# Loop vs. vectorized: each function against the scalar references, T = 37, N = 5, float64
# ---------------------------------------------------------------------------------------------

SEEDS = [10, 11, 12, 13]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 0.5), (1.0, 1.0), (0.8, 0.0)])
def test_gae_matches_scalar_reference(seed, gamma, lam):
    r, v, nv, term, trunc = random_rollout(seed)
    got = gae(r, v, nv, term, trunc, gamma, lam)
    assert got.dtype == F64 and got.shape == (37, 5)
    expected = ref_gae(r.tolist(), v.tolist(), nv.tolist(), term.tolist(), trunc.tolist(), gamma, lam)
    close(got, expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma", [0.99, 0.9, 1.0])
def test_n_step_returns_matches_scalar_reference(seed, gamma):
    r, _, nv, term, trunc = random_rollout(seed)
    got = n_step_returns(r, nv, term, trunc, gamma)
    assert got.dtype == F64 and got.shape == (37, 5)
    close(got, ref_n_step_returns(r.tolist(), nv.tolist(), term.tolist(), trunc.tolist(), gamma))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma", [0.99, 0.9, 1.0])
def test_reward_to_go_matches_scalar_reference(seed, gamma):
    r, _, _, term, trunc = random_rollout(seed)
    dones = term | trunc
    got = reward_to_go(r, dones, gamma)
    assert got.dtype == F64 and got.shape == (37, 5)
    close(got, ref_reward_to_go(r.tolist(), dones.tolist(), gamma))


@pytest.mark.parametrize("seed", SEEDS)
def test_td_errors_matches_scalar_reference(seed):
    r, v, nv, term, _ = random_rollout(seed)
    got = td_errors(r, v, nv, term, 0.97)
    assert got.dtype == F64 and got.shape == (37, 5)
    close(got, ref_td_errors(r.tolist(), v.tolist(), nv.tolist(), term.tolist(), 0.97))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma", [0.99, 0.9])
def test_discount_weights_matches_scalar_reference(seed, gamma):
    _, _, _, term, trunc = random_rollout(seed)
    dones = term | trunc
    got = discount_weights(dones, gamma)
    assert got.shape == (37, 5) and got.is_floating_point()
    # discount_weights computes in float32 (it has no float input to take a dtype from), so the
    # tolerance is float32's: a few ulps relative.
    expected = t64(ref_discount_weights(dones.tolist(), gamma))
    torch.testing.assert_close(got.double(), expected, rtol=2e-6, atol=0.0)
    # restarts: right after a done the weight is exactly 1; the first step is 1.
    assert torch.all(got[0] == 1.0)
    assert torch.all(got[1:][dones[:-1]] == 1.0)


# ---------------------------------------------------------------------------------------------
# Shape checks
# ---------------------------------------------------------------------------------------------


def _shapes_ok():
    return random_rollout(5, T=6, N=3)


@pytest.mark.parametrize("which", ["values", "next_values", "terminated", "truncated"])
@pytest.mark.parametrize("bad_shape", [(6, 3, 1), (6,), (5, 3), (6, 4)])
def test_gae_shape_mismatch_raises(which, bad_shape):
    r, v, nv, term, trunc = _shapes_ok()
    args = {"values": v, "next_values": nv, "terminated": term, "truncated": trunc}
    args[which] = torch.zeros(bad_shape, dtype=args[which].dtype)
    with pytest.raises(ValueError, match=which):
        gae(r, args["values"], args["next_values"], args["terminated"], args["truncated"], 0.9, 0.9)


@pytest.mark.parametrize("which", ["next_values", "terminated", "truncated"])
@pytest.mark.parametrize("bad_shape", [(6, 3, 1), (6,), (6, 1)])
def test_n_step_returns_shape_mismatch_raises(which, bad_shape):
    r, _, nv, term, trunc = _shapes_ok()
    args = {"next_values": nv, "terminated": term, "truncated": trunc}
    args[which] = torch.zeros(bad_shape, dtype=args[which].dtype)
    with pytest.raises(ValueError, match=which):
        n_step_returns(r, args["next_values"], args["terminated"], args["truncated"], 0.9)


@pytest.mark.parametrize("bad_shape", [(6, 3, 1), (6,), (3, 6)])
def test_reward_to_go_shape_mismatch_raises(bad_shape):
    r, *_ = _shapes_ok()
    with pytest.raises(ValueError, match="dones"):
        reward_to_go(r, torch.zeros(bad_shape, dtype=torch.bool), 0.9)


def test_td_errors_shape_mismatch_raises():
    # a [T, N, 1] values tensor must not broadcast silently to [T, N, N] (ARCHITECTURE rule 3)
    r, v, nv, term, _ = _shapes_ok()
    with pytest.raises(ValueError):
        td_errors(r, v.unsqueeze(-1), nv, term, 0.9)
