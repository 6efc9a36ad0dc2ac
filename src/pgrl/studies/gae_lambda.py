"""GAE(lambda) bias/variance study against Monte-Carlo ground truth from restarted native envs.

At fixed parameters (policy pi and its critic V_phi from a short training) this measures, for S
start pairs (s, a), how the advantage estimate Â_lambda(s, a) spreads over independent
continuations and how far its mean lies from the true advantage A^pi(s, a) = Q^pi(s, a) - V^pi(s):

1. Start pairs: S copies of the env run pi (with the env's own time limit and resets); copy i is
   snapshotted (physical state and observation) at a uniformly random step in [0, burn_in), and
   a ~ pi(.|s) is drawn once for it.
2. Continuations: rows of one batched native env are set to the saved states (cloning rows; the
   elapsed-step counter starts at 0) and stepped with pi:
   - K = n_rollouts estimator rows take a first: Â_lambda = pgrl.returns.gae(...) at t = 0;
   - K more estimator rows draw the first action from pi (their mean Â_lambda estimates the
     pi-average of Â_lambda(s, .), whose true counterpart E_a A^pi(s, a) is 0);
   - n_ref reference rows take a first: their discounted Monte-Carlo return averages to Q^pi(s, a);
   - n_ref reference rows draw the first action from pi: their mean return estimates V^pi(s).
3. Horizon: the env's time limit is lifted in continuations, which run until termination or
   H = ceil(log(1e-3) / log(gamma)) steps (gamma^H <= 1e-3).  The quantity pgrl's critics estimate
   is the time-unaware discounted value (a time-limit truncation bootstraps from V(final obs)),
   so this is the matching ground truth.  At H the GAE estimates bootstrap from V_phi (truncation,
   as the library does); the Monte-Carlo reference does not, which leaves a tail of at most
   gamma^H * max|V| (about 0.1 return units on CartPole-v1 with gamma = 0.99).

Per lambda, with m_s, v_s the mean and variance of Â_lambda over the K rows of pair s, and
Â_ref,s = mean(Q rows) - mean(V rows):

- bias = mean_s (m_s - Â_ref,s)
- bias_sq = mean_s [(m_s - Â_ref,s)^2 - v_s / K - se_s^2], the mean squared bias with the
  sampling noise of both means subtracted (se_s^2 = Var(Q rows)/n_ref + Var(V rows)/n_ref), so it
  is unbiased but can come out slightly negative when the bias is below the noise;
  (the subtracted noise, mean_s [v_s / K + se_s^2], is what limits how small a bias is resolved);
- bias_sq_se: standard error of bias_sq over the start pairs (std of the per-pair terms / sqrt(S));
- action_bias_sq: the same for the action-dependent part of the bias, (m_s - o_s) - Â_ref,s with
  o_s the mean Â_lambda of the pi-first rows (noise v_s/K + Var(pi-first rows)/K + se_s^2 subtracted,
  with standard error action_bias_sq_se).  A bias that depends only on s (a critic offset V^pi(s) -
  V_phi(s), which is all of the lambda = 1 bias) cancels in the policy gradient, because
  E_a[grad log pi(a|s)] = 0; the action-dependent part is what biases the gradient.
- variance = mean_s v_s (unbiased sample variance over the K continuations);
- mse = bias_sq + variance, the expected squared error of one estimate.

Only environments whose state can be saved and restored qualify: pgrl's native envs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pgrl.envs.native import NATIVE_ENVS, make_native
from pgrl.errors import ConfigError
from pgrl.returns import gae
from pgrl.studies import StudyResult
from pgrl.studies.common import FixedPolicy, check_positive, fmt, horizon_for, train_fixed_policy, write_csv

COLUMNS = ["lambda", "bias", "bias_sq", "bias_sq_se", "action_bias_sq", "action_bias_sq_se", "variance", "mse"]
DEFAULT_LAMBDAS = (0.0, 0.5, 0.9, 0.95, 1.0)


def check_restorable(env_id: str) -> None:
    """ConfigError unless env_id has a native implementation (whose state can be restored)."""
    if env_id not in NATIVE_ENVS:
        raise ConfigError(
            f"the gae-lambda study restarts environments from saved states, which {env_id} does not allow; "
            f"use one of {', '.join(NATIVE_ENVS)}"
        )


def parse_lambdas(text: str | list | tuple) -> list[float]:
    """"0,0.5,1" (or a list of numbers) -> [0.0, 0.5, 1.0], each in [0, 1]."""
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        lambdas = [float(item) for item in items if str(item).strip() != ""]
    except ValueError:
        raise ConfigError(
            f"--lambdas takes comma-separated numbers in [0, 1], e.g. 0,0.5,0.95,1; got {text!r}"
        ) from None
    if not lambdas or any(not 0.0 <= lam <= 1.0 for lam in lambdas):
        raise ConfigError(f"--lambdas takes comma-separated numbers in [0, 1], e.g. 0,0.5,0.95,1; got {text!r}")
    return lambdas


@dataclass
class Continuations:
    """What continuation rows produced.

    returns: [M] discounted Monte-Carlo return of each row from its start (no bootstrap).
    rewards, values, next_values, terminated, truncated: [T, R] for the first R (recorded) rows;
    values[t] = V_phi(s_t), next_values[t] = V_phi(final obs of step t).  Steps after a row's
    continuation ended hold zeros and never reach the t = 0 estimates.
    lengths: [M] steps each row ran before its continuation ended (or the horizon).
    """

    returns: torch.Tensor
    rewards: torch.Tensor
    values: torch.Tensor
    next_values: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    lengths: torch.Tensor


@torch.no_grad()
def sample_start_states(fixed: FixedPolicy, n_states: int, burn_in: int, seed: int):
    """(states [S, D], obs [S, *obs_shape]) visited by pi at a random step in [0, burn_in)."""
    env = make_native(fixed.env_id, n_states, seed=seed)
    obs = env.reset(seed=seed)
    snap = torch.randint(0, burn_in, (n_states,))
    states, start_obs = env.state.clone(), obs.clone()
    for t in range(burn_in):
        here = snap == t
        states = torch.where(here.unsqueeze(1), env.state, states)
        start_obs = torch.where(here.reshape(-1, *([1] * (obs.dim() - 1))), obs, start_obs)
        actions, _ = fixed.policy.act(fixed.normalize(obs))
        obs = env.step(fixed.policy.to_env(actions)).obs
    return states, start_obs


@torch.no_grad()
def run_continuations(
    fixed: FixedPolicy,
    states: torch.Tensor,
    obs: torch.Tensor,
    first_actions: torch.Tensor,
    take_first: torch.Tensor,
    horizon: int,
    record: int,
    seed: int,
) -> Continuations:
    """Step M rows from the given states with pi until each ends (terminated or horizon).

    states [M, D], obs [M, *obs_shape]; first_actions [M(, d)] is used where take_first [M] is
    true, elsewhere the first action is drawn from pi.  Finished rows are dropped from the batch
    every 16 steps (the env is rebuilt from the survivors' rows), so the cost is the sum of the
    continuation lengths, not M times the longest.
    """
    gamma, scale = fixed.gamma, fixed.reward_scale
    M = states.shape[0]
    env = make_native(fixed.env_id, M, seed=seed, dtype=states.dtype, max_episode_steps=horizon)
    env.reset(seed=seed)
    env.state, env.elapsed_steps = states.clone(), torch.zeros(M, dtype=torch.int64)
    index = torch.arange(M)  # original row of each active row
    returns = torch.zeros(M, dtype=torch.float64)
    lengths = torch.zeros(M, dtype=torch.int64)
    alive = torch.ones(M, dtype=torch.bool)
    rec = {name: torch.zeros(horizon, record) for name in ("rewards", "values", "next_values")}
    rec_flags = {name: torch.zeros(horizon, record, dtype=torch.bool) for name in ("terminated", "truncated")}
    policy_obs = fixed.normalize(obs)
    recorded = index < record
    rec["values"][0] = fixed.policy.value(policy_obs[:record])
    discount = 1.0
    steps = horizon
    for t in range(horizon):
        actions = fixed.policy.distribution(policy_obs).sample()
        if t == 0:
            mask = take_first.reshape(-1, *([1] * (actions.dim() - 1)))
            actions = torch.where(mask, first_actions.to(actions.dtype), actions)
        step = env.step(fixed.policy.to_env(actions))
        rewards = step.rewards * scale
        returns.index_add_(0, index, (discount * alive * rewards).double())
        lengths.index_add_(0, index, alive.long())
        done = step.terminated | step.truncated
        if bool(recorded.any()):
            rows = index[recorded]
            live = alive[recorded]
            rec["rewards"][t, rows] = torch.where(live, rewards[recorded], 0.0)
            next_values = fixed.policy.value(fixed.normalize(step.final_obs[recorded]))
            rec["next_values"][t, rows] = torch.where(live, next_values, 0.0)
            rec_flags["terminated"][t, rows] = live & step.terminated[recorded]
            rec_flags["truncated"][t, rows] = live & step.truncated[recorded] & ~step.terminated[recorded]
            if t + 1 < horizon:
                rec["values"][t + 1, rows] = torch.where(live & ~done[recorded], next_values, 0.0)
        alive &= ~done
        discount *= gamma
        policy_obs = fixed.normalize(step.obs)
        if t % 16 == 15:
            n_alive = int(alive.sum())
            if n_alive == 0:
                steps = t + 1
                break
            if n_alive < 0.7 * alive.shape[0]:  # rebuild the env from the surviving rows
                keep = alive
                survivors = make_native(fixed.env_id, n_alive, seed=seed + t, dtype=states.dtype,
                                        max_episode_steps=horizon)
                survivors.reset()
                survivors.state, survivors.elapsed_steps = env.state[keep].clone(), env.elapsed_steps[keep].clone()
                env, index, policy_obs = survivors, index[keep], policy_obs[keep]
                alive, recorded = alive[keep], recorded[keep]
    return Continuations(
        returns=returns,
        rewards=rec["rewards"][:steps],
        values=rec["values"][:steps],
        next_values=rec["next_values"][:steps],
        terminated=rec_flags["terminated"][:steps],
        truncated=rec_flags["truncated"][:steps],
        lengths=lengths,
    )


@dataclass
class GAEMeasurement:
    """Per-lambda rows (COLUMNS) and the per-start-pair numbers behind them.

    adv_mean, adv_var: [L, S] mean and variance of Â_lambda over the K estimator rows.
    pi_mean, pi_var: [L, S] the same over the K rows whose first action is drawn from pi.
    q_ref, v_ref: [S] Monte-Carlo Q^pi(s, a) and V^pi(s); a_ref = q_ref - v_ref; q_var, v_var their
    per-row variances; v_critic: [S] V_phi(s); mc_mean: [S] mean discounted return of the
    estimator rows (an independent estimate of Q^pi(s, a)).
    """

    lambdas: list[float]
    rows: list[list]
    adv_mean: torch.Tensor
    adv_var: torch.Tensor
    pi_mean: torch.Tensor
    pi_var: torch.Tensor
    q_ref: torch.Tensor
    v_ref: torch.Tensor
    q_var: torch.Tensor
    v_var: torch.Tensor
    v_critic: torch.Tensor
    mc_mean: torch.Tensor
    n_rollouts: int
    n_ref: int
    horizon: int
    mean_length: float
    seconds: float

    @property
    def a_ref(self) -> torch.Tensor:
        return self.q_ref - self.v_ref

    @property
    def ref_se2(self) -> torch.Tensor:
        """Squared standard error of a_ref per start pair [S]."""
        return (self.q_var + self.v_var) / self.n_ref


def measure_gae_lambda(
    fixed: FixedPolicy,
    lambdas: list[float],
    *,
    n_states: int = 64,
    n_rollouts: int = 48,
    n_ref: int = 192,
    horizon: int | None = None,
    burn_in: int = 200,
    seed: int = 0,
) -> GAEMeasurement:
    """The measurement behind ``gae_lambda_study`` (module docstring) at the fixed parameters."""
    check_restorable(fixed.env_id)
    start = time.perf_counter()
    gamma = fixed.gamma
    horizon = horizon or horizon_for(gamma)
    torch.manual_seed(seed)
    states, obs = sample_start_states(fixed, n_states, burn_in, seed=seed * 1000 + 11)
    with torch.no_grad():
        first, _ = fixed.policy.act(fixed.normalize(obs))
    S, K, R = n_states, n_rollouts, n_ref
    # rows, state-major within each group: K estimator rows taking a | K estimator rows drawing
    # the first action from pi | R Q-reference rows | R V-reference rows
    groups, takes = (K, K, R, R), (True, False, True, False)
    rep = torch.cat([torch.arange(S).repeat_interleave(n) for n in groups])
    take_first = torch.cat([torch.full((S * n,), take) for n, take in zip(groups, takes, strict=True)])
    result = run_continuations(
        fixed, states[rep], obs[rep], first[rep], take_first, horizon, record=2 * S * K, seed=seed * 1000 + 13
    )
    estimates = torch.stack([
        gae(result.rewards, result.values, result.next_values, result.terminated, result.truncated, gamma, lam)[0]
        for lam in lambdas
    ]).double()
    estimates, pi_estimates = estimates[:, : S * K].reshape(-1, S, K), estimates[:, S * K :].reshape(-1, S, K)
    est_returns, _, q_returns, v_returns = result.returns.split([S * n for n in groups])
    q_returns, v_returns = q_returns.reshape(S, R), v_returns.reshape(S, R)
    with torch.no_grad():
        v_critic = fixed.policy.value(fixed.normalize(obs)).double()
    measurement = GAEMeasurement(
        lambdas=list(lambdas),
        rows=[],
        adv_mean=estimates.mean(2),
        adv_var=estimates.var(2),
        pi_mean=pi_estimates.mean(2),
        pi_var=pi_estimates.var(2),
        q_ref=q_returns.mean(1),
        v_ref=v_returns.mean(1),
        q_var=q_returns.var(1),
        v_var=v_returns.var(1),
        v_critic=v_critic,
        mc_mean=est_returns.reshape(S, K).mean(1),
        n_rollouts=K,
        n_ref=R,
        horizon=horizon,
        mean_length=float(result.lengths.double().mean()),
        seconds=0.0,
    )
    for i, lam in enumerate(lambdas):
        stats = lambda_statistics(measurement, i)
        measurement.rows.append([lam] + [fmt(stats[c]) for c in COLUMNS[1:]])
    measurement.seconds = time.perf_counter() - start
    return measurement


def lambda_statistics(m: GAEMeasurement, i: int) -> dict[str, float]:
    """bias, bias_sq, variance, mse, bias_sq_noise of lambda number i (module docstring)."""
    bias = m.adv_mean[i] - m.a_ref
    noise = m.adv_var[i] / m.n_rollouts + m.ref_se2
    terms = bias.pow(2) - noise
    action_bias = bias - m.pi_mean[i]
    action_noise = noise + m.pi_var[i] / m.n_rollouts
    action_terms = action_bias.pow(2) - action_noise
    root_s = math.sqrt(terms.shape[0])
    variance = float(m.adv_var[i].mean())
    return {
        "bias": float(bias.mean()),
        "bias_sq": float(terms.mean()),
        "bias_sq_se": float(terms.std() / root_s) if terms.shape[0] > 1 else math.nan,
        "action_bias_sq": float(action_terms.mean()),
        "action_bias_sq_se": float(action_terms.std() / root_s) if terms.shape[0] > 1 else math.nan,
        "variance": variance,
        "mse": float(terms.mean()) + variance,
        "bias_sq_noise": float(noise.mean()),
        "action_bias_sq_noise": float(action_noise.mean()),
    }


def plot_gae_lambda(m: GAEMeasurement, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lambdas = m.lambdas
    stats = [lambda_statistics(m, i) for i in range(len(lambdas))]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, label, style in (("bias_sq", "bias² of Â(s,a)", "o-"),
                              ("action_bias_sq", "bias² of its action-dependent part (±2 s.e.)", "D-"),
                              ("variance", "variance", "s-"), ("mse", "MSE = bias² + variance", "^--")):
        ys = [s[key] for s in stats]
        # error bars (±2 s.e. over start pairs) only where they decide the reading: the
        # action-dependent bias², whose values near lambda = 1 are small against the noise
        errors = [2 * s[key + "_se"] for s in stats] if key == "action_bias_sq" else None
        ax.errorbar(lambdas, ys, yerr=errors, fmt=style, capsize=3, label=label)
    # symlog: zero (a deterministic env's TD(0) variance) and slightly negative noise-corrected
    # bias² values stay on the plot; the linear band is 1e-3 of the largest value.
    top = max(max(abs(s[k]) for k in ("bias_sq", "variance", "mse")) for s in stats)
    ax.set_yscale("symlog", linthresh=max(top * 1e-3, 1e-12))
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("λ")
    ax.set_ylabel("squared advantage units (symlog)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def gae_lambda_study(
    env_id: str,
    lambdas,
    out_dir: str | Path,
    *,
    algo: str = "a2c",
    seed: int = 0,
    train_steps: int = 50_000,
    n_states: int = 64,
    n_rollouts: int = 48,
    n_ref: int = 192,
    horizon: int | None = None,
) -> StudyResult:
    """Bias and variance of GAE(lambda) advantages per lambda; writes gae_lambda.png and .csv into out_dir.

    The policy and critic are ``algo``'s preset for ``env_id`` trained ``train_steps`` env steps
    with ``seed``.  ``lambdas``: a list of numbers in [0, 1] or a string "0,0.5,1".
    """
    check_restorable(env_id)
    lambdas = parse_lambdas(lambdas)
    n_states = check_positive("n_states", n_states)
    n_rollouts = check_positive("n_rollouts", n_rollouts)
    n_ref = check_positive("n_ref", n_ref)
    if n_rollouts < 2 or n_ref < 2:
        raise ConfigError(
            f"n_rollouts and n_ref must be at least 2 to measure a variance, got {n_rollouts} and {n_ref}"
        )
    if horizon is not None:
        horizon = check_positive("horizon", horizon)
    out_dir = Path(out_dir)
    fixed = train_fixed_policy(env_id, algo, train_steps, seed)
    m = measure_gae_lambda(fixed, lambdas, n_states=n_states, n_rollouts=n_rollouts, n_ref=n_ref,
                           horizon=horizon, seed=seed)
    title = f"GAE(λ) bias and variance on {env_id}: {n_states} start pairs, {n_rollouts} continuations each"
    csv_path = write_csv(out_dir / "gae_lambda.csv", COLUMNS, m.rows)
    png_path = plot_gae_lambda(m, out_dir / "gae_lambda.png", title)
    critic_error = m.v_ref - m.v_critic
    scale_note = (
        "" if fixed.reward_scale == 1.0
        else f" Rewards are scaled by {fixed.reward_scale:.4g} as the critic was trained."
    )
    text = (
        f"Fixed parameters: {fixed.source}; γ = {fixed.gamma}.{scale_note} "
        f"For each of {n_states} start pairs (s, a) (states visited by π, a ~ π(·|s)), Â_λ(s, a) is computed with "
        f"pgrl.returns.gae on {n_rollouts} independent continuations that take a and then follow π; the reference "
        f"A^π(s, a) = Q^π(s, a) − V^π(s) is the difference of mean discounted Monte-Carlo returns of {n_ref} further "
        f"continuations taking a and {n_ref} drawing the first action from π. Continuations restart from the saved "
        f"native-env state, ignore the env's time limit and run until termination or H = {m.horizon} steps "
        f"(γ^H ≤ 1e-3; GAE bootstraps there, the reference does not); mean length {m.mean_length:.1f}. "
        f"bias = mean over pairs of E[Â_λ|s,a] − A^π(s,a); bias_sq = mean squared bias minus the sampling noise "
        f"of both means (bias_sq_se: its standard error over pairs); action_bias_sq is the same for the "
        f"action-dependent part of the bias (E[Â_λ|s,a] − E_a'~π E[Â_λ|s,a'] − A^π(s,a), from {n_rollouts} more "
        f"continuations per pair whose first action is drawn from π), the part that biases a policy gradient, "
        f"since a bias depending on s alone cancels there; "
        f"variance = mean over pairs of Var[Â_λ|s,a]; mse = bias_sq + variance. "
        f"The critic's error V^π(s) − V_φ(s) averages {float(critic_error.mean()):.3g} "
        f"(RMS {float(critic_error.pow(2).mean().sqrt()):.3g}) over the start states; the λ = 1 estimate's bias is "
        f"that error up to noise and the horizon tail. Measured in {m.seconds:.1f} s after "
        f"{fixed.train_seconds:.1f} s of training. "
        f"Results: {csv_path.name}, {png_path.name}."
    )
    return StudyResult(title=title, text=text, figures=[png_path], table=(list(COLUMNS), m.rows))
