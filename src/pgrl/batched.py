"""K seeds of one PPO configuration trained together in one process, with stacked parameters.

Training is a pure function of (config, seed), so K seeds can run as one program: the K
policies are stored as stacked tensors [K, ...] and every layer is one batched matmul, the K·N
environments are one native env, and one fused Adam steps all K parameter sets.  Each seed keeps
its own random streams — initial weights, action noise, minibatch order and environment resets
are drawn exactly as ``PPO(..., seed=s).learn()`` draws them — so seed s follows the run it
would follow alone, up to the float rounding of batched matmuls.  On a small network the cost of
a step is mostly per-op dispatch, which K seeds share: see README "Many seeds at once".

Each seed gets a normal run folder (config.json, metrics.csv, TensorBoard events,
model.safetensors, summary.json), so ``pgrl report`` and ``pgrl eval`` treat it like any other.
``time/elapsed`` in a seed's metrics is the wall-clock time of the whole batch.

Shapes: K seeds, N envs per seed, T steps per rollout, B minibatch rows per seed.

| tensor                 | shape          |
|------------------------|----------------|
| obs fed to the policy  | [K, N, *obs]   |
| rollout storage        | [T, K*N, ...]  (seed k owns columns k*N ... k*N+N-1) |
| per-seed training data | [K, T*N, ...]  (row t*N + n, as ``flatten`` orders one seed) |
| minibatch indices      | [K, B]         |
| losses, metrics        | [K]            |
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pgrl.algos.common import set_learning_rate
from pgrl.algos.ppo import PPO, PPOConfig
from pgrl.config import build_config, load_preset, merge
from pgrl.envs.make import make_env
from pgrl.errors import ConfigError, PGRLError, TrainingError
from pgrl.logging import RunLogger
from pgrl.policies.actor_critic import ActorCriticPolicy
from pgrl.policies.distributions import Categorical, DiagGaussian
from pgrl.returns import gae
from pgrl.rollout.collector import record_episode_ends
from pgrl.rollout.storage import Rollout

BATCHED_ALGOS = ("ppo",)


def batched_unsupported(
    algo: str, env_id: str, hparams: dict | None = None, env_backend: str = "auto", preset: str = "default"
) -> str | None:
    """None when seeds of this configuration can train together, else the reason they cannot."""
    if algo.lower() not in BATCHED_ALGOS:
        return f"{algo} trains one seed per process (batched seeds exist for {', '.join(BATCHED_ALGOS)})"
    from pgrl.envs.native import NATIVE_ENVS

    if env_backend == "gymnasium" or env_id not in NATIVE_ENVS:
        return f"{env_id} has no native batched implementation (batched seeds need one: {', '.join(NATIVE_ENVS)})"
    try:
        config = build_config(PPOConfig, "ppo", merge(load_preset("ppo", env_id, preset), hparams or {}))
    except PGRLError as exc:
        return str(exc)
    reasons = {
        "target_kl": config.target_kl is not None,  # each seed would stop its epochs at a different minibatch
        "kl_coef": config.kl_coef > 0,
        "normalize": config.normalize,
        "normalize_reward": config.normalize_reward,
        "use_sde": config.use_sde or config.policy_kwargs.use_sde,
        "clip_reward": getattr(config, "clip_reward", None) is not None,
    }
    unsupported = [name for name, used in reasons.items() if used]
    if unsupported:
        return f"batched seeds do not implement {', '.join(unsupported)}"
    return None


class _SigmoidTanh(torch.autograd.Function):
    """tanh(x) computed as 2·sigmoid(2x) − 1 (equal to within float32 rounding), with tanh's backward.

    On this CPU build torch.tanh is several times slower than torch.sigmoid on the [K, B, 64]
    activations of a batch (README "Many seeds at once"), and activations are a large share of a
    batched update; the backward reuses tanh's own kernel on the saved output.
    """

    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def _tanh(x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled():
        return _SigmoidTanh.apply(x)
    return torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)


class StackedPolicy:
    """K ActorCriticPolicy copies as stacked parameters; the forward pass of all K is one op chain.

    Written by hand (batched matmuls over the policy's own layer list) rather than with
    torch.func.vmap: on the small MLPs of classic control the vmap dispatch layer costs more
    than the matmuls themselves.
    """

    def __init__(self, policies: list[ActorCriticPolicy]):
        self.template = template = policies[0]
        per_policy = [dict(policy.named_parameters()) for policy in policies]
        self.params: dict[str, nn.Parameter] = {
            name: nn.Parameter(torch.stack([named[name].detach() for named in per_policy]).contiguous())
            for name in per_policy[0]
        }
        self.continuous = template.continuous
        if self.continuous:
            self.action_low, self.action_high = template.action_low, template.action_high

    def parameters(self) -> list[nn.Parameter]:
        return list(self.params.values())

    def write_back(self, policies: list[ActorCriticPolicy]) -> None:
        """Copy seed k's parameters into policies[k]."""
        with torch.no_grad():
            for k, policy in enumerate(policies):
                for name, param in policy.named_parameters():
                    param.copy_(self.params[name][k])

    def _mlp(self, prefix: str, layers: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(layers, nn.Sequential):  # nn.Identity
            return x
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.Linear):
                weight, bias = self.params[f"{prefix}.{i}.weight"], self.params[f"{prefix}.{i}.bias"]
                x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            elif isinstance(layer, nn.Tanh):
                x = _tanh(x)
            else:
                x = layer(x)  # activations are elementwise
        return x

    def _features(self, obs: torch.Tensor) -> torch.Tensor:
        template = self.template
        if template.discrete_obs:
            n = int(template.observation_space.n)
            obs = nn.functional.one_hot(obs.long().reshape(obs.shape[0], -1), n)
        flat = obs.reshape(obs.shape[0], obs.shape[1], -1).float()
        return self._mlp("trunk", template.trunk, flat) if template.shared else flat

    def _dist(self, features: torch.Tensor) -> Categorical | DiagGaussian:
        latent = features if self.template.shared else self._mlp("pi_body", self.template.pi_body, features)
        out = self._mlp("pi_head", self.template.pi_head, latent)
        if not self.continuous:
            return Categorical(out)
        return DiagGaussian(out, self.params["log_std"].unsqueeze(1))

    def _value(self, features: torch.Tensor) -> torch.Tensor:
        latent = features if self.template.shared else self._mlp("vf_body", self.template.vf_body, features)
        return self._mlp("vf_head", self.template.vf_head, latent).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """obs [K, B, *obs] -> values [K, B]."""
        return self._value(self._features(obs))

    def act(self, obs: torch.Tensor, generators: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        """obs [K, N, *obs] -> actions [K, N(, d)], log_probs [K, N]; seed k's noise from generators[k]."""
        dist = self._dist(self._features(obs))
        if isinstance(dist, Categorical):
            # The same Gumbel-max draw as Categorical.sample, one uniform block per seed.
            noise = _per_seed(torch.empty_like(dist.logits), generators, "uniform")
            actions = (dist.logits - torch.log(-torch.log(noise.clamp_(min=1e-20)))).argmax(dim=-1)
        else:
            noise = _per_seed(torch.empty_like(dist.mean), generators, "normal")
            actions = dist.mean + dist.log_std.exp() * noise
        return actions, dist.log_prob(actions)

    def evaluate(self, obs: torch.Tensor, actions: torch.Tensor):
        """obs [K, B, *obs], actions [K, B(, d)] -> log_probs, entropy, values, each [K, B]."""
        features = self._features(obs)
        dist = self._dist(features)
        return dist.log_prob(actions), dist.entropy(), self._value(features)

    def to_env(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.clamp(actions, self.action_low, self.action_high) if self.continuous else actions


def _per_seed(out: torch.Tensor, generators: list[torch.Generator], kind: str) -> torch.Tensor:
    """Fill out[k] from generators[k] (each block draws what a lone run's tensor of that shape would)."""
    for block, generator in zip(out.unbind(0), generators, strict=True):
        if kind == "uniform":
            block.uniform_(generator=generator)
        else:
            block.normal_(generator=generator)
    return out


def _per_seed_layout(x: torch.Tensor, k: int) -> torch.Tensor:
    """[T, K*N, ...] -> [K, T*N, ...], seed k's rows in the order ``flatten`` gives a lone run."""
    t, kn = x.shape[:2]
    return x.reshape(t, k, kn // k, *x.shape[2:]).transpose(0, 1).reshape(k, t * (kn // k), *x.shape[2:])


def _rollout_layout(x: torch.Tensor, t: int) -> torch.Tensor:
    """Inverse of ``_per_seed_layout``: [K, T*N] -> [T, K*N]."""
    k = x.shape[0]
    return x.reshape(k, t, -1).transpose(0, 1).reshape(t, -1)


def _normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-seed advantage normalization over dim 1 (``pgrl.algos.base.normalize`` for each row)."""
    return (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True) + eps)


def _explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    var = target.var(dim=1)
    return torch.where(var > 0, 1 - (target - predicted).var(dim=1) / var, torch.full_like(var, math.nan))


def _all_rows(x: torch.Tensor) -> torch.Tensor:
    return x


def _clip_grad_norms(params: list[nn.Parameter], max_norm: float) -> None:
    """Global-norm clipping per seed: seed k's gradients scaled as clip_grad_norm_ scales one run's."""
    grads = [p.grad for p in params]
    norms = torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1).norm(dim=1)  # [K]
    scale = (max_norm / (norms + 1e-6)).clamp_(max=1.0)
    torch._foreach_mul_(grads, [scale.view(-1, *([1] * (g.dim() - 1))) for g in grads])


class BatchedPPO:
    """PPO for K seeds at once (see the module docstring); ``models[k]`` is seed k's PPO."""

    def __init__(self, models: list[PPO]):
        self.models = models
        self.k = len(models)
        lead = models[0]
        self.config, self.device, self.env_id = lead.config, lead.device, lead.env_id
        self.n_envs = lead.config.n_envs
        # Each model was just built under torch.manual_seed(seed): its global RNG state then is
        # where a lone run's action noise and minibatch order start.  _seed_generators captured it.
        self.policy = StackedPolicy([m.policy for m in models])
        self.optimizer = lead.make_optimizer(self.policy.parameters(), lead.lr_schedule(1.0))
        self.env = make_env(self.env_id, self.k * self.n_envs, backend="native", device=self.device)
        self.env.split_streams([m.seed * 1000 for m in models])  # what Collector.reset(seed*1000) seeds
        self.obs_shape = tuple(self.env.single_observation_space.shape or ())
        self.obs = self.env.reset()
        self.episode_return = torch.zeros(self.k * self.n_envs, device=self.device)
        self.episode_length = torch.zeros(self.k * self.n_envs, dtype=torch.int64, device=self.device)

    # -- collection ----------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self, generators):
        """One rollout of every seed: storage [T, K*N] and each seed's finished (returns, lengths)."""
        t_steps, k, n = self.config.n_steps, self.k, self.n_envs
        policy = self.policy
        action_shape = tuple(self.env.single_action_space.shape or ())
        rollout = Rollout.allocate(
            t_steps, k * n, self.obs_shape, action_shape,
            torch.float32 if policy.continuous else torch.int64, self.device,
        )
        finished = torch.empty((t_steps, k * n), device=self.device)
        lengths = torch.zeros((t_steps, k * n), dtype=torch.int64, device=self.device)
        for t in range(t_steps):
            obs = self.obs
            actions, log_probs = policy.act(obs.view(k, n, *self.obs_shape), generators)
            actions, log_probs = actions.reshape(k * n, *action_shape), log_probs.reshape(k * n)
            step = self.env.step(policy.to_env(actions))
            record_episode_ends(self.episode_return, self.episode_length, step.rewards,
                                step.terminated | step.truncated, finished[t], lengths[t])
            rollout.obs[t], rollout.actions[t], rollout.log_probs[t] = obs, actions, log_probs
            rollout.rewards[t], rollout.next_obs[t] = step.rewards, step.final_obs
            rollout.terminated[t], rollout.truncated[t] = step.terminated, step.truncated
            self.obs = step.obs
        # one host copy per rollout: finished episodes per seed
        finished = _per_seed_layout(finished, k).cpu()
        lengths = _per_seed_layout(lengths, k).cpu()
        episodes = []
        for row, row_lengths in zip(finished, lengths, strict=True):
            mask = ~torch.isnan(row)
            episodes.append((row[mask].tolist(), row_lengths[mask].tolist()))
        return rollout, episodes

    # -- update ----------------------------------------------------------------------------------
    def update(self, rollout, generators, progress_remaining: float) -> dict[str, torch.Tensor | float]:
        c, k, lead = self.config, self.k, self.models[0]
        lr = lead.lr_schedule(progress_remaining)
        set_learning_rate(self.optimizer, lr)
        clip = lead.clip_schedule(progress_remaining)
        clip_vf = lead.clip_vf_schedule(progress_remaining) if lead.clip_vf_schedule else None
        t_steps = rollout.n_steps
        obs = _per_seed_layout(rollout.obs, k)
        with torch.no_grad():
            both = self.policy.value(torch.cat([obs, _per_seed_layout(rollout.next_obs, k)], dim=1))
        values, next_values = both[:, : obs.shape[1]], both[:, obs.shape[1] :]
        advantages = gae(
            rollout.rewards, _rollout_layout(values, t_steps), _rollout_layout(next_values, t_steps),
            rollout.terminated, rollout.truncated, c.gamma, c.gae_lambda,
        )
        advantages = _per_seed_layout(advantages, k)
        returns = advantages + values
        actions, old_log_probs = _per_seed_layout(rollout.actions, k), _per_seed_layout(rollout.log_probs, k)
        rows = torch.arange(k, device=self.device).unsqueeze(1)
        n = obs.shape[1]
        params = self.policy.parameters()
        sums: dict[str, torch.Tensor] = {}
        n_updates = 0
        for _ in range(c.n_epochs):
            # one permutation per seed, from that seed's stream (``minibatches`` draws the same for a lone run)
            perms = torch.stack([torch.randperm(n, generator=g, device=self.device) for g in generators])
            for start in range(0, n, c.batch_size):
                if c.batch_size >= n:
                    # One minibatch holding every row: the losses are means over it, so the order
                    # the permutation gives them changes nothing; skip the gathers (the
                    # permutation is still drawn, to keep each seed's stream where a lone run's is).
                    take = _all_rows
                else:
                    idx = perms[:, start : start + c.batch_size]
                    take = lambda x, idx=idx: x[rows, idx]  # noqa: E731
                log_probs, entropy, new_values = self.policy.evaluate(take(obs), take(actions))
                adv = take(advantages)
                adv = _normalize(adv) if c.normalize_advantage else adv
                old = take(old_log_probs)
                log_ratio = log_probs - old
                ratio = torch.exp(log_ratio)
                clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv
                pg_loss = -torch.min(ratio * adv, clipped).mean(dim=1)
                target = take(returns)
                if clip_vf is None:
                    vf_loss = (target - new_values).pow(2).mean(dim=1)
                else:
                    old_values = take(values)
                    clipped_values = old_values + torch.clamp(new_values - old_values, -clip_vf, clip_vf)
                    vf_loss = torch.max((target - new_values).pow(2), (target - clipped_values).pow(2)).mean(dim=1)
                entropy_loss = -entropy.mean(dim=1)
                loss = pg_loss + c.vf_coef * vf_loss + c.ent_coef * entropy_loss  # [K]
                self.optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()  # seed k's parameters get exactly d loss[k]
                if c.max_grad_norm is not None:
                    _clip_grad_norms(params, c.max_grad_norm)
                self.optimizer.step()
                n_updates += 1
                terms = {
                    "loss/policy": pg_loss.detach(),
                    "loss/value": vf_loss.detach(),
                    "loss/entropy": entropy_loss.detach(),
                    "stats/approx_kl": ((ratio - 1.0) - log_ratio).mean(dim=1).detach(),
                    "stats/clip_frac": ((ratio - 1.0).abs() > clip).float().mean(dim=1),
                }
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value
        metrics: dict[str, torch.Tensor | float] = {key: value / n_updates for key, value in sums.items()}
        metrics["stats/explained_var"] = _explained_variance(values, returns)
        metrics["stats/n_updates"] = float(n_updates)
        metrics["stats/early_stop"] = 0.0
        metrics["train/learning_rate"] = lr
        metrics["train/clip_range"] = clip
        return metrics


def _seed_generators(models: list[PPO], states: list[torch.Tensor]) -> list[torch.Generator]:
    generators = []
    for model, state in zip(models, states, strict=True):
        generator = torch.Generator(device=model.device)
        generator.set_state(state)
        generators.append(generator)
    return generators


def build_models(env_id: str, seeds: list[int], hparams: dict | None = None, preset: str = "default",
                 device: str = "auto") -> tuple[list[PPO], list[torch.Generator]]:
    """One PPO per seed, built as a lone run builds it, and each seed's random stream after building."""
    models, states = [], []
    for seed in seeds:
        model = PPO("MlpPolicy", env_id, seed=seed, device=device, preset=preset, env_backend="native",
                    **(hparams or {}))
        models.append(model)
        states.append(torch.get_rng_state() if model.device.type == "cpu" else torch.cuda.get_rng_state(model.device))
    return models, _seed_generators(models, states)


def train_batched(
    algo: str,
    env_id: str,
    seeds: list[int],
    out_dirs: list[str | Path] | None = None,
    *,
    total_timesteps: int | None = None,
    hparams: dict | None = None,
    preset: str = "default",
    eval_episodes: int = 10,
    stop_seconds: float | None = None,
    progress_bar: bool = False,
    device: str = "auto",
    log_rows: int = 200,
) -> list[dict[str, Any]]:
    """Train ``seeds`` of one configuration together; returns one summary per seed.

    With ``out_dirs`` each seed's run folder is written as ``pgrl train`` writes it (and the
    summaries come from there); without, the trained models are in the summaries' "model" key.
    ``stop_seconds`` ends training early once that much wall-clock time has passed.
    """
    from pgrl.runs import finish_run, new_run_dir, write_run_config

    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"batched training needs distinct seeds, got {seeds}")
    reason = batched_unsupported(algo, env_id, hparams, preset=preset)
    if reason is not None:
        raise ConfigError(f"these seeds cannot train as one batch: {reason}; train them one by one")
    if out_dirs is not None and len(out_dirs) != len(seeds):
        raise ConfigError(f"got {len(out_dirs)} run folders for {len(seeds)} seeds; pass one per seed")
    models, generators = build_models(env_id, seeds, hparams, preset, device)
    total = int(total_timesteps if total_timesteps is not None else models[0].config.n_timesteps)
    if total <= 0:
        raise ConfigError(f"total_timesteps must be positive, got {total}")
    run_dirs = []
    for i, model in enumerate(models):
        if out_dirs is None:
            run_dirs.append(None)
            continue
        run_dir = new_run_dir(out_dirs[i], model.name, env_id, model.seed)
        write_run_config(run_dir, model, preset=preset, env_backend="native", vectorization="sync",
                         total_timesteps=total, batched_seeds=seeds)
        run_dirs.append(run_dir)

    batch = BatchedPPO(models)
    _train(batch, generators, total, run_dirs, stop_seconds, progress_bar, log_rows)
    batch.policy.write_back([m.policy for m in models])
    summaries = []
    for model, run_dir in zip(models, run_dirs, strict=True):
        model.policy.eval()
        if run_dir is None:
            summaries.append({"algo": model.name, "env_id": env_id, "seed": model.seed, "model": model,
                              "num_timesteps": model.num_timesteps, "train_seconds": model.train_seconds})
        else:
            summaries.append(finish_run(model, run_dir, eval_episodes))
    return summaries


def _train(batch: BatchedPPO, generators, total: int, run_dirs, stop_seconds, progress_bar, log_rows) -> None:
    """The trainer's loop (pgrl.trainer.Trainer) for K seeds: same rows, same columns, per seed."""
    models, k = batch.models, batch.k
    loggers = [RunLogger(run_dir, total, progress_bar=False) for run_dir in run_dirs]
    bar = None
    if progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="step", dynamic_ncols=True, desc=f"{k} seeds")
    recent = [(deque(maxlen=100), deque(maxlen=100)) for _ in range(k)]
    episodes = [0] * k
    log_every = max(1, total // log_rows)
    steps, last_row_step = 0, -log_every
    started = time.perf_counter()
    last_row_time, last_row_at = started, 0
    try:
        while steps < total:
            rollout, finished = batch.collect(generators)
            progress_remaining = max(0.0, 1.0 - steps / total)
            metrics = batch.update(rollout, generators, progress_remaining)
            steps += rollout.n_steps * batch.n_envs
            _check_finite(models, metrics, steps)
            for i, (returns, lengths) in enumerate(finished):
                recent[i][0].extend(returns)
                recent[i][1].extend(lengths)
                episodes[i] += len(returns)
            now = time.perf_counter()
            out_of_time = stop_seconds is not None and now - started >= stop_seconds
            done = steps >= total or out_of_time
            if steps - last_row_step >= log_every or done:
                per_seed = {key: (value.tolist() if isinstance(value, torch.Tensor) else [value] * k)
                            for key, value in metrics.items()}
                sps = (steps - last_row_at) / max(now - last_row_time, 1e-9)
                for i, logger in enumerate(loggers):
                    row = {key: values[i] for key, values in per_seed.items()}
                    row.update({
                        "rollout/ep_return_mean": _mean(recent[i][0]),
                        "rollout/ep_length_mean": _mean(recent[i][1]),
                        "rollout/episodes": episodes[i],
                        "time/elapsed": now - started,
                        "time/sps": sps,
                    })
                    logger.log(steps, row)
                last_row_step, last_row_time, last_row_at = steps, now, steps
                if bar is not None:
                    bar.update(steps - bar.n)
                    returns = [_mean(r) for r, _ in recent]
                    shown = _mean([r for r in returns if not math.isnan(r)])
                    bar.set_postfix_str(f"return {shown:.1f} (mean of seeds)")
            if out_of_time:
                break
    finally:
        elapsed = time.perf_counter() - started
        for i, model in enumerate(models):
            model.num_timesteps, model.num_episodes, model.train_seconds = steps, episodes[i], elapsed
        for logger in loggers:
            logger.close()
        if bar is not None:
            bar.close()


def _check_finite(models: list[PPO], metrics, steps: int) -> None:
    """One host sync per update, as a lone run has: stop naming the seed whose loss is not finite."""
    losses = metrics["loss/policy"] + metrics["loss/value"]
    if bool(torch.isfinite(losses).all()):
        return
    bad = int((~torch.isfinite(losses)).nonzero()[0])
    raise TrainingError(
        f"ppo loss of seed {models[bad].seed} became {float(losses[bad])} at step {steps}; "
        "lower learning_rate or max_grad_norm, or train that seed alone with normalize on"
    )


def _mean(values) -> float:
    return float(sum(values) / len(values)) if values else math.nan


__all__ = ["BatchedPPO", "StackedPolicy", "batched_unsupported", "build_models", "train_batched"]
