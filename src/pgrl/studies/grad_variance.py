"""Gradient-variance study: five policy-gradient estimators on the same episodes, at fixed parameters.

Setup.  A policy pi_theta is held fixed (trained briefly, or loaded from a run folder).  A critic
V_phi (its own MLP) is fitted at those parameters by regression on Monte-Carlo returns of
separate episodes (truncated tails bootstrap from V_phi(final obs), terminated ones do not), so
every critic-based estimator uses the same baseline, and that baseline is independent of the
episodes it is applied to.  M batches of whole episodes are then sampled with pi_theta, and on
*each batch* every estimator computes its gradient from the *same* episodes:

  g_b = (1 / |episodes in b|) * sum over episodes, steps t of  c_t * grad_theta log pi_theta(a_t|s_t)

| estimator          | c_t                                                         |
|--------------------|-------------------------------------------------------------|
| reinforce_episode  | G_0 (the episode's discounted return, on every step)        |
| reinforce_rtg      | gamma^t G_t (discounted reward-to-go)                       |
| vpg_baseline       | w_t (G_t - V_phi(s_t))                                      |
| td0                | w_t (r_t + gamma (1 - terminated_t) V_phi(s'_t) - V_phi(s_t)) |
| gae                | w_t GAE(gamma, lambda)_t                                    |

w_t = gamma^t (default; all five then estimate the gradient of J = E[G_0], the last three up to
the critic's bias) or 1 with ``gamma_weighting=False`` (how pgrl's VPG and A2C weigh steps by
default).  The Monte-Carlo estimators never bootstrap; td0 and gae bootstrap from V_phi(final obs)
where a time limit truncated the episode (pgrl.returns).  theta is the actor's parameters.

Statistics over the M batch gradients g_1..g_M (vectors of all actor parameters), per estimator:

- total_variance = trace of the sample covariance = sum_b ||g_b - mean||^2 / (M - 1)
- mean_grad_sq_norm = ||mean_b g_b||^2 (raw; its expectation exceeds ||E g||^2 by total_variance / M)
- snr = mean_grad_sq_norm / total_variance - 1/M, an unbiased-numerator estimate of
  ||E g||^2 / tr Cov(g); <= 0 means no signal detectable with M batches
- cosine: mean and std over batches of cos(g_b, g_ref), where g_ref is the mean of the
  baseline estimator (c_t = w_t (G_t - V_phi(s_t)), unbiased for the same gradient as the
  reward-to-go one since V_phi does not depend on these episodes, with much less variance) over
  ``ref_episodes`` separate episodes
- cos_mean_ref: cos(mean_b g_b, g_ref), how well the estimator's average points the right way
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pgrl.envs.make import check_env_id, make_env
from pgrl.errors import ConfigError
from pgrl.policies.networks import mlp
from pgrl.returns import discount_weights, gae, n_step_returns, reward_to_go, td_errors
from pgrl.rollout.collector import Collector
from pgrl.rollout.storage import Rollout
from pgrl.studies import StudyResult
from pgrl.studies.common import (
    FixedPolicy,
    check_positive,
    fmt,
    load_fixed_policy,
    train_fixed_policy,
    write_csv,
)

ESTIMATORS = ("reinforce_episode", "reinforce_rtg", "vpg_baseline", "td0", "gae")
LABELS = {
    "reinforce_episode": "REINFORCE, episode return",
    "reinforce_rtg": "REINFORCE, γ^t reward-to-go",
    "vpg_baseline": "VPG, reward-to-go − V(s)",
    "td0": "actor-critic, TD(0) error",
    "gae": "A2C, GAE(λ)",
}
#: the estimator whose high-sample mean is the reference gradient: reward-to-go minus the fitted
#: baseline is unbiased (V_phi was fitted on other episodes) and has far less variance than
#: reward-to-go alone, so the same number of episodes gives a much more precise reference.
REFERENCE = ESTIMATORS.index("vpg_baseline")
COLUMNS = [
    "estimator",
    "total_variance",
    "mean_grad_sq_norm",
    "snr",
    "cosine_mean",
    "cosine_std",
    "cos_mean_ref",
]


# -- data -----------------------------------------------------------------------------------------


def collect_episodes(fixed: FixedPolicy, n_episodes: int, seed: int) -> Rollout:
    """n_episodes whole episodes of the fixed policy, one per env copy: [T, n_episodes] with valid.

    Raw rewards; observations as the policy sees them (normalized when the model normalizes).
    """
    env = make_env(fixed.env_id, n_episodes, seed=seed)
    collector = Collector(env, fixed.policy, fixed.obs_normalizer, None)
    rollout = collector.collect_episodes(env.max_episode_steps or 10_000)
    env.close()
    return rollout


def concat_episodes(rollouts: list[Rollout]) -> Rollout:
    """Episode rollouts side by side ([T_i, N_i] -> [max T, sum N]); padding steps are invalid."""
    if len(rollouts) == 1:
        return rollouts[0]
    T = max(r.n_steps for r in rollouts)

    def pad(x: torch.Tensor, value) -> torch.Tensor:
        if x.shape[0] == T:
            return x
        filler = torch.full((T - x.shape[0], *x.shape[1:]), value, dtype=x.dtype, device=x.device)
        return torch.cat([x, filler])

    fields = {}
    for name, value in (("obs", 0), ("actions", 0), ("log_probs", 0), ("rewards", 0), ("terminated", True),
                        ("truncated", False), ("next_obs", 0), ("valid", False)):
        fields[name] = torch.cat([pad(getattr(r, name), value) for r in rollouts], dim=1)
    return Rollout(**fields)


def select_episodes(rollout: Rollout, columns: torch.Tensor) -> Rollout:
    return Rollout(*(getattr(rollout, name)[:, columns] for name in
                     ("obs", "actions", "log_probs", "rewards", "terminated", "truncated", "next_obs", "valid")))


# -- critic ---------------------------------------------------------------------------------------


class ValueNet(nn.Module):
    """V_phi(obs) = loc + scale * mlp(obs); loc/scale are the target statistics (fixed buffers)."""

    def __init__(self, obs_dim: int, hidden=(64, 64)):
        super().__init__()
        self.net = mlp(obs_dim, list(hidden), 1, "tanh")
        self.register_buffer("loc", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.loc + self.scale * self.net(obs.reshape(obs.shape[0], -1).float()).squeeze(-1)


@torch.no_grad()
def values_of(value_net: nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """V over a [T, N, *obs_shape] tensor -> [T, N]."""
    T, N = obs.shape[:2]
    return value_net(obs.reshape(T * N, *obs.shape[2:])).reshape(T, N)


def fit_critic(rollout: Rollout, gamma: float, seed: int, rounds: int = 3, steps: int = 300,
               batch_size: int = 1024) -> tuple[ValueNet, float]:
    """Fit V_phi to discounted returns of whole episodes; returns (net, explained variance on the data).

    Round 1 regresses on pure Monte-Carlo reward-to-go; later rounds on returns that are
    Monte-Carlo where the episode terminated and bootstrap from the current V_phi(final obs) where
    a time limit truncated it (pgrl.returns.n_step_returns over each whole episode).
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    obs_dim = int(math.prod(rollout.obs.shape[2:])) or 1
    net = ValueNet(obs_dim)
    valid = rollout.valid
    obs = rollout.obs[valid]
    optimizer = torch.optim.Adam(net.net.parameters(), lr=3e-3)
    targets = reward_to_go(rollout.rewards, rollout.dones, gamma)[valid]
    net.loc.fill_(float(targets.mean()))
    net.scale.fill_(float(targets.std().clamp_min(1e-3)) if targets.numel() > 1 else 1.0)
    for round_ in range(rounds):
        if round_ > 0:
            next_values = values_of(net, rollout.next_obs)
            targets = n_step_returns(rollout.rewards, next_values, rollout.terminated, rollout.truncated, gamma)[valid]
        for _ in range(steps):
            index = torch.randint(0, obs.shape[0], (min(batch_size, obs.shape[0]),), generator=generator)
            error = (net(obs[index]) - targets[index]) / net.scale
            loss = error.pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        predicted = net(obs)
        explained = float(1 - (targets - predicted).var() / targets.var().clamp_min(1e-12))
    return net, explained


# -- estimators -----------------------------------------------------------------------------------


def estimator_coefficients(
    rollout: Rollout,
    values: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
    gae_lambda: float = 0.95,
    gamma_weighting: bool = True,
) -> torch.Tensor:
    """The per-step factor c_t of each estimator (module docstring), [K=5, T, N] in ESTIMATORS order.

    rollout: whole episodes, one per column starting at t = 0 (steps after an episode's end are
    ignored by every estimator since the recursions stop at the episode's done).
    values, next_values: V_phi(obs) and V_phi(final obs), [T, N].
    """
    rewards, terminated, truncated, dones = rollout.rewards, rollout.terminated, rollout.truncated, rollout.dones
    returns = reward_to_go(rewards, dones, gamma)
    discounts = discount_weights(dones, gamma, rewards.dtype)
    weights = discounts if gamma_weighting else torch.ones_like(discounts)
    episode_return = returns[0].expand_as(returns)
    coefficients = [
        episode_return,
        discounts * returns,
        weights * (returns - values),
        weights * td_errors(rewards, values, next_values, terminated, gamma),
        weights * gae(rewards, values, next_values, terminated, truncated, gamma, gae_lambda),
    ]
    return torch.stack(coefficients)


def actor_parameters(fixed: FixedPolicy) -> list[nn.Parameter]:
    return list(fixed.policy.actor_parameters())


def policy_gradients(fixed: FixedPolicy, rollout: Rollout, coefficients: torch.Tensor) -> torch.Tensor:
    """sum over valid steps of c_k,t * grad log pi(a_t|s_t) / (number of episodes), [K, P].

    coefficients: [K, T, N] for the N episodes (columns) of ``rollout``.  One forward pass and one
    vmapped backward for all K coefficient vectors (torch.autograd.grad, is_grads_batched).
    """
    valid = rollout.valid
    obs, actions = rollout.obs[valid], rollout.actions[valid]
    scale = coefficients[:, valid] / rollout.num_envs
    params = actor_parameters(fixed)
    with torch.enable_grad():
        log_probs = fixed.policy.distribution(obs).log_prob(actions)
        grads = torch.autograd.grad(log_probs, params, grad_outputs=scale, is_grads_batched=True)
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1)


def gradient_statistics(grads: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Statistics of M batch gradients [M, P] of one estimator (module docstring), in float64."""
    grads, reference = grads.double(), reference.double()
    M = grads.shape[0]
    mean = grads.mean(0)
    total_variance = float((grads - mean).pow(2).sum() / max(M - 1, 1))
    mean_sq = float(mean.pow(2).sum())
    ref_norm = reference.norm().clamp_min(1e-30)
    cosines = (grads @ reference) / (grads.norm(dim=1).clamp_min(1e-30) * ref_norm)
    return {
        "total_variance": total_variance,
        "mean_grad_sq_norm": mean_sq,
        "snr": mean_sq / total_variance - 1.0 / M if total_variance > 0 else math.nan,
        "cosine_mean": float(cosines.mean()),
        "cosine_std": float(cosines.std()) if M > 1 else 0.0,
        "cos_mean_ref": float(mean @ reference / (mean.norm().clamp_min(1e-30) * ref_norm)),
    }


def partition_batches(lengths: torch.Tensor, n_batches: int, batch_episodes: int | None,
                      batch_steps: int | None) -> list[torch.Tensor] | None:
    """Episode columns of each batch: batch_episodes consecutive episodes, or consecutive episodes
    until a batch holds at least batch_steps steps.  None when the pool is too small."""
    batches, start = [], 0
    total = lengths.shape[0]
    cumulative = torch.cumsum(lengths, 0)
    for _ in range(n_batches):
        if batch_episodes is not None:
            stop = start + batch_episodes
        else:
            before = cumulative[start - 1] if start > 0 else 0
            reached = torch.nonzero(cumulative - before >= batch_steps)
            reached = reached[reached >= start]
            if reached.numel() == 0:
                return None
            stop = int(reached[0]) + 1
        if stop > total:
            return None
        batches.append(torch.arange(start, stop))
        start = stop
    return batches


# -- the study ------------------------------------------------------------------------------------


@dataclass
class GradVarianceMeasurement:
    """Everything measured; ``rows`` follow COLUMNS, ``grads`` is [M, K, P]."""

    rows: list[list]
    stats: dict[str, dict[str, float]]
    grads: torch.Tensor
    reference: torch.Tensor
    reference_rel_error: float
    critic_explained_variance: float
    batch_sizes: list[int]
    batch_steps: list[int]
    mean_episode_return: float
    mean_episode_length: float
    seconds: dict[str, float]


def measure_grad_variance(
    fixed: FixedPolicy,
    *,
    batches: int = 50,
    batch_episodes: int | None = 10,
    batch_steps: int | None = None,
    ref_episodes: int = 2000,
    fit_episodes: int = 300,
    gae_lambda: float = 0.95,
    gamma_weighting: bool = True,
    seed: int = 0,
) -> GradVarianceMeasurement:
    """The measurement behind ``grad_variance_study`` at fixed parameters (see the module docstring)."""
    gamma = fixed.gamma
    seconds: dict[str, float] = {}
    torch.manual_seed(seed)
    start = time.perf_counter()
    fit = collect_episodes(fixed, fit_episodes, seed=seed * 1000 + 101)
    value_net, _ = fit_critic(fit, gamma, seed)
    seconds["critic fit"] = time.perf_counter() - start

    start = time.perf_counter()
    reference_pool = collect_episodes(fixed, ref_episodes, seed=seed * 1000 + 202)
    mean_len = max(1.0, float(reference_pool.valid.sum()) / ref_episodes)
    chunk_grads = []
    chunk = 250
    for lo in range(0, ref_episodes, chunk):
        part = select_episodes(reference_pool, torch.arange(lo, min(ref_episodes, lo + chunk)))
        values, next_values = values_of(value_net, part.obs), values_of(value_net, part.next_obs)
        coefficients = estimator_coefficients(part, values, next_values, gamma, gae_lambda, gamma_weighting)
        chunk_grads.append((policy_gradients(fixed, part, coefficients[REFERENCE : REFERENCE + 1])[0], part.num_envs))
    weights = torch.tensor([n for _, n in chunk_grads], dtype=torch.float64)
    stacked = torch.stack([g for g, _ in chunk_grads]).double()
    reference = (stacked * weights[:, None]).sum(0) / weights.sum()
    if len(chunk_grads) > 1:
        spread = ((stacked - reference).pow(2).sum(1) * weights).sum() / weights.sum()
        reference_rel_error = float(torch.sqrt(spread / (len(chunk_grads) - 1)) / reference.norm().clamp_min(1e-30))
    else:
        reference_rel_error = math.nan
    seconds["reference"] = time.perf_counter() - start

    start = time.perf_counter()
    if batch_episodes is not None:
        pool = collect_episodes(fixed, batches * batch_episodes, seed=seed * 1000 + 303)
    else:
        pool_parts, n_pool = [], 0
        while True:
            need = max(16, int(1.25 * batches * math.ceil(batch_steps / mean_len)) - n_pool)
            pool_parts.append(collect_episodes(fixed, need, seed=seed * 1000 + 303 + len(pool_parts)))
            n_pool += need
            pool = concat_episodes(pool_parts)
            if partition_batches(pool.valid.sum(0), batches, None, batch_steps) is not None:
                break
    lengths = pool.valid.sum(0)
    groups = partition_batches(lengths, batches, batch_episodes, batch_steps)
    assert groups is not None
    seconds["batches"] = time.perf_counter() - start

    start = time.perf_counter()
    values, next_values = values_of(value_net, pool.obs), values_of(value_net, pool.next_obs)
    coefficients = estimator_coefficients(pool, values, next_values, gamma, gae_lambda, gamma_weighting)
    grads = torch.stack([
        policy_gradients(fixed, select_episodes(pool, columns), coefficients[:, :, columns]) for columns in groups
    ])
    seconds["gradients"] = time.perf_counter() - start

    # the critic's quality on the batch episodes (held out from its fit)
    targets = n_step_returns(pool.rewards, next_values, pool.terminated, pool.truncated, gamma)[pool.valid]
    explained = float(1 - (targets - values[pool.valid]).var() / targets.var().clamp_min(1e-12))
    stats = {name: gradient_statistics(grads[:, k], reference) for k, name in enumerate(ESTIMATORS)}
    rows = [[name] + [fmt(stats[name][c]) for c in COLUMNS[1:]] for name in ESTIMATORS]
    episode_returns = pool.rewards.masked_fill(~pool.valid, 0).sum(0)
    return GradVarianceMeasurement(
        rows=rows,
        stats=stats,
        grads=grads,
        reference=reference,
        reference_rel_error=reference_rel_error,
        critic_explained_variance=explained,
        batch_sizes=[len(g) for g in groups],
        batch_steps=[int(lengths[g].sum()) for g in groups],
        mean_episode_return=float(episode_returns.mean()),
        mean_episode_length=float(lengths.float().mean()),
        seconds=seconds,
    )


def plot_grad_variance(measurement: GradVarianceMeasurement, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = measurement.stats
    labels = [LABELS[name] for name in ESTIMATORS]
    y = list(range(len(ESTIMATORS)))[::-1]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), sharey=True)
    panels = [
        ("total_variance", "total variance  tr Cov(g)", True),
        ("mean_grad_sq_norm", "‖mean g‖²", True),
        ("snr", "SNR  ‖E g‖² / tr Cov(g)", True),
        ("cosine_mean", "cos(g_batch, g_ref)  mean ± std", False),
    ]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, name, log) in zip(axes, panels, strict=True):
        values = [stats[e][key] for e in ESTIMATORS]
        for i, (yy, value) in enumerate(zip(y, values, strict=True)):
            color = colors[i % len(colors)]
            if log and not value > 0:
                ax.plot([], [])
                ax.annotate("≤ 0", (0.02, yy), xycoords=("axes fraction", "data"), va="center", fontsize=8)
                continue
            if key == "cosine_mean":
                ax.errorbar(value, yy, xerr=stats[ESTIMATORS[i]]["cosine_std"], fmt="o", color=color, capsize=3)
            else:
                ax.hlines(yy, 0 if not log else min(v for v in values if v > 0) / 3, value, color=color, lw=3)
                ax.plot(value, yy, "o", color=color)
        if log:
            ax.set_xscale("log")
        else:
            ax.axvline(0, color="grey", lw=0.5)
            ax.set_xlim(-1.05, 1.05)
        ax.set_xlabel(name)
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(labels)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def grad_variance_study(
    env_id: str,
    out_dir: str | Path,
    *,
    algo: str = "ppo",
    train_steps: int = 10_000,
    run_dir: str | Path | None = None,
    batches: int = 50,
    batch_episodes: int | None = None,
    batch_steps: int | None = None,
    ref_episodes: int = 2000,
    fit_episodes: int = 300,
    gae_lambda: float = 0.95,
    gamma_weighting: bool = True,
    seed: int = 0,
) -> StudyResult:
    """Measure the five estimators' gradient statistics; writes grad_variance.png and .csv into out_dir.

    The fixed policy is the model of ``run_dir`` when given, else ``algo``'s preset trained for
    ``train_steps`` env steps with ``seed``.  Batches hold ``batch_episodes`` whole episodes
    (10 when neither size is given), or consecutive whole episodes until at least ``batch_steps``
    steps.
    """
    if batch_episodes is None and batch_steps is None:
        batch_episodes = 10
    check_env_id(env_id)
    batches = check_positive("batches", batches)
    if batches < 2:
        raise ConfigError(f"batches must be at least 2 to measure a variance, got {batches}")
    if (batch_episodes is None) == (batch_steps is None):
        raise ConfigError("give batch_episodes or batch_steps, not both (--batch-episodes or --batch-steps)")
    if batch_episodes is not None:
        batch_episodes = check_positive("batch_episodes", batch_episodes)
    if batch_steps is not None:
        batch_steps = check_positive("batch_steps", batch_steps)
    ref_episodes = check_positive("ref_episodes", ref_episodes)
    fit_episodes = check_positive("fit_episodes", fit_episodes)
    if not 0.0 <= float(gae_lambda) <= 1.0:
        raise ConfigError(f"gae_lambda must lie in [0, 1], got {gae_lambda}")
    out_dir = Path(out_dir)
    fixed = load_fixed_policy(run_dir, env_id) if run_dir is not None else train_fixed_policy(
        env_id, algo, train_steps, seed
    )
    measurement = measure_grad_variance(
        fixed, batches=batches, batch_episodes=batch_episodes, batch_steps=batch_steps,
        ref_episodes=ref_episodes, fit_episodes=fit_episodes, gae_lambda=gae_lambda,
        gamma_weighting=gamma_weighting, seed=seed,
    )
    size = (f"{batch_episodes} episodes" if batch_episodes is not None
            else f"≥{batch_steps} steps (mean {sum(measurement.batch_sizes) / batches:.1f} episodes)")
    title = f"Gradient variance of five estimators on {env_id}: {batches} batches of {size}"
    csv_path = write_csv(out_dir / "grad_variance.csv", COLUMNS, measurement.rows)
    png_path = plot_grad_variance(measurement, out_dir / "grad_variance.png", title)
    s = measurement.stats
    ratio = s["reinforce_episode"]["total_variance"] / max(s["vpg_baseline"]["total_variance"], 1e-300)
    weighting = "γ^t" if gamma_weighting else "1 (no γ^t weighting)"
    text = (
        f"Fixed policy: {fixed.source}; its mean episode return on the batch episodes is "
        f"{measurement.mean_episode_return:.1f} (mean length {measurement.mean_episode_length:.1f}). "
        f"γ = {fixed.gamma}, GAE λ = {gae_lambda}, step weights w_t = {weighting}. "
        f"The critic V_φ (64-64 tanh MLP) was fitted on {fit_episodes} separate episodes and explains "
        f"{measurement.critic_explained_variance:.2f} of the variance of the bootstrapped returns on the batch "
        f"episodes. "
        f"Each batch gradient g_b is Σ_t c_t ∇_θ log π_θ(a_t|s_t) summed over the batch's episodes and divided by "
        f"their number, over the {measurement.grads.shape[2]:,} actor parameters; all five estimators use the same "
        f"episodes. total_variance is the trace of the covariance of g_b across the {batches} batches, "
        f"mean_grad_sq_norm is ‖mean_b g_b‖², snr is mean_grad_sq_norm / total_variance − 1/M, and cosine is "
        f"cos(g_b, g_ref) with g_ref the mean of the reward-to-go − V_φ gradient (unbiased, weights {weighting}) over "
        f"{ref_episodes} further episodes (its relative standard error ≈ {measurement.reference_rel_error:.3f}). "
        f"The whole-episode REINFORCE gradient has {ratio:.1f}× the total variance of reward-to-go minus the baseline."
    )
    text += f" Results: {csv_path.name}, {png_path.name}."
    return StudyResult(title=title, text=text, figures=[png_path], table=(list(COLUMNS), measurement.rows))
