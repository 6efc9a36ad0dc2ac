"""K seeds of one PPO configuration trained together in one process, with stacked parameters.

Training is a pure function of (config, seed), so K seeds can run as one program: the K
policies become one stacked policy (``ActorCriticPolicy.stack``: every layer one batched matmul,
the same act / value / evaluate code), the K·N environments are one native env, and one fused
optimizer steps all K parameter sets.  The loss is PPO's own (``pgrl.algos.ppo.ppo_loss``, which
reduces over the last dim), summed over seeds so each seed's gradient is its own.  Each seed keeps
its own random streams — initial weights, action and gSDE noise, minibatch order and environment
resets are drawn exactly as ``PPO(..., seed=s).learn()`` draws them — and its own observation
and reward statistics, adaptive KL coefficient and target-KL early stop, so seed s follows the
run it would follow alone, up to the float rounding of batched matmuls.  On a small network the
cost of a step is mostly per-op dispatch, which K seeds share: see docs/speed.md, "Many seeds at once".

With ``target_kl`` the seeds stop their epochs at different minibatches: the optimizer then
steps per-seed views of the stacked parameters, and a stopped seed's views get no gradient, so
Adam leaves its parameters, moments and step count exactly where its lone run leaves them.

Each seed gets a normal run folder (config.json, metrics.csv, TensorBoard events,
model.safetensors, summary.json), so ``pgrl report`` and ``pgrl eval`` treat it like any other.
``time/elapsed`` in a seed's metrics is the wall-clock time of the whole batch.

Shapes: K seeds, N envs per seed, T steps per rollout, B minibatch rows per seed.

| tensor                     | shape          |
|----------------------------|----------------|
| obs fed to the policy      | [K, N, *obs]   |
| obs / reward statistics    | [K, *obs] / [K] (``ObsNormalizer`` / ``RewardScaler`` with n_stacked=K) |
| gSDE exploration matrices  | [K, N, latent, act_dim] |
| rollout storage            | [T, K*N, ...]  (seed k owns columns k*N ... k*N+N-1) |
| per-seed training data     | [K, T*N, ...]  (row t*N + n, as ``flatten`` orders one seed) |
| minibatch indices          | [K, B]         |
| losses, metrics, kl_coef   | [K]            |
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pgrl.algos.common import explained_variance, set_learning_rate
from pgrl.algos.ppo import PPO, PPOConfig, adapt_kl_coef, ppo_loss
from pgrl.config import build_config, is_recurrent, load_preset, merge
from pgrl.envs.make import make_env
from pgrl.envs.normalize import ObsNormalizer, RewardScaler
from pgrl.errors import ConfigError, PGRLError, TrainingError
from pgrl.loops.rows import RunLog, mean_or_nan
from pgrl.policies.actor_critic import ActorCriticPolicy
from pgrl.returns import gae
from pgrl.rollout.collector import Collector


def batched_algorithms() -> list[str]:
    """Algorithms whose seeds can train as one batch (``capabilities.batched_seeds``)."""
    from pgrl.algos import ALGORITHMS

    return [name for name, cls in ALGORITHMS.items() if cls.capabilities.batched_seeds]


BATCHED_ALGOS = tuple(batched_algorithms())


def batched_unsupported(
    algo: str, env_id: str, hparams: dict | None = None, env_backend: str = "auto", preset: str = "default"
) -> str | None:
    """None when seeds of this configuration can train together, else the reason they cannot.

    Every PPO option trains batched; what cannot is another algorithm (K-seed batching is
    written for PPO's update) or an environment without a native batched implementation (the
    K·N environments must be one tensor env to step as one).
    """
    if algo.lower() not in batched_algorithms():
        return f"{algo} trains one seed per process (batched seeds exist for {', '.join(BATCHED_ALGOS)})"
    from pgrl.envs.native import NATIVE_ENVS

    if env_backend == "gymnasium" or env_id not in NATIVE_ENVS:
        return f"{env_id} has no native batched implementation (batched seeds need one: {', '.join(NATIVE_ENVS)})"
    try:
        config = build_config(PPOConfig, "ppo", merge(load_preset("ppo", env_id, preset), hparams or {}))
    except PGRLError as exc:
        return str(exc)
    if is_recurrent(config.policy):
        return f"{config.policy} is an LSTM policy, whose seeds train one per process (batched seeds stack MLPs)"
    return None


def _per_seed_layout(x: torch.Tensor, k: int) -> torch.Tensor:
    """[T, K*N, ...] -> [K, T*N, ...], seed k's rows in the order ``flatten`` gives a lone run."""
    t, kn = x.shape[:2]
    return x.reshape(t, k, kn // k, *x.shape[2:]).transpose(0, 1).reshape(k, t * (kn // k), *x.shape[2:])


def _rollout_layout(x: torch.Tensor, t: int) -> torch.Tensor:
    """Inverse of ``_per_seed_layout``: [K, T*N] -> [T, K*N]."""
    k = x.shape[0]
    return x.reshape(k, t, -1).transpose(0, 1).reshape(t, -1)


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

    def __init__(self, models: list[PPO], generators: list[torch.Generator]):
        self.models = models
        self.k = k = len(models)
        lead = models[0]
        self.config, self.device, self.env_id = lead.config, lead.device, lead.env_id
        c, device = self.config, self.device
        self.n_envs = c.n_envs
        # Each model was just built under torch.manual_seed(seed): its global RNG state then is
        # where a lone run's action noise and minibatch order start.  build_models captured it.
        self.generators = generators
        self.policy = ActorCriticPolicy.stack([m.policy for m in models], generators)
        self.params = list(self.policy.parameters())
        if c.target_kl is None:
            self.seed_params = None
            self.optimizer = lead.make_optimizer(self.params, lead.lr_schedule(1.0))
        else:  # seeds stop at different minibatches: step per-seed views (see the module docstring)
            self.seed_params = [[p.detach()[i] for p in self.params] for i in range(k)]
            views = [view for seed in self.seed_params for view in seed]
            self.optimizer = lead.make_optimizer(views, lead.lr_schedule(1.0))
        self.kl_coef = torch.full((k,), c.kl_coef, dtype=torch.float64, device=device) if c.kl_coef > 0 else None
        self.env = make_env(self.env_id, k * self.n_envs, backend="native", device=device)
        self.env.split_streams([m.seed * 1000 for m in models])  # what Collector.reset(seed*1000) seeds
        self.obs_shape = tuple(self.env.single_observation_space.shape or ())
        self.obs_normalizer = (ObsNormalizer(self.obs_shape, clip=c.clip_obs, n_stacked=k).to(device)
                               if c.normalize else None)
        self.reward_scaler = (RewardScaler(self.n_envs, c.gamma, clip=c.clip_reward or 10.0, n_stacked=k).to(device)
                              if c.normalize_reward else None)
        # The lone runs' Collector, over stacked views: seed k's envs, noise and statistics are its own.
        self.collector = Collector(self.env, self.policy, self.obs_normalizer, self.reward_scaler,
                                   sde_sample_freq=c.sde_sample_freq, clip_reward=c.clip_reward, stack=k)
        self.collector.reset()  # the streams were split above: no seed here

    def write_back(self) -> None:
        """Seed k's parameters, observation statistics and kl_coef into models[k]."""
        self.policy.write_back([m.policy for m in self.models])
        for i, model in enumerate(self.models):
            if self.obs_normalizer is not None:
                model.obs_normalizer.load_state_dict(self.obs_normalizer.unstack(i).state_dict())
            if self.kl_coef is not None:
                model.kl_coef = float(self.kl_coef[i])

    @torch.no_grad()
    def collect(self):
        """One rollout of every seed: storage [T, K*N] and each seed's finished (returns, lengths)."""
        rollout = self.collector.collect(self.config.n_steps)
        return rollout, rollout.seed_episodes

    # -- update ----------------------------------------------------------------------------------
    def _step(self, active: list[bool] | None) -> None:
        """One optimizer step; with per-seed views, only the seeds in ``active`` move."""
        if self.seed_params is not None:
            for i, views in enumerate(self.seed_params):
                for view, param in zip(views, self.params, strict=True):
                    view.grad = param.grad[i] if active[i] else None
        self.optimizer.step()

    def update(self, rollout, progress_remaining: float = 1.0) -> dict[str, torch.Tensor | float]:
        c, k, lead = self.config, self.k, self.models[0]
        generators = self.generators
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
        kl_coef = self.kl_coef.float() if self.kl_coef is not None else None  # a lone run's beta * kl is float32
        sums: dict[str, torch.Tensor] = {}
        n_updates = torch.zeros(k, device=self.device)
        active = [True] * k  # seeds still in their epochs (target_kl stops each on its own)
        active_mask = torch.ones(k, dtype=torch.bool, device=self.device)
        for _ in range(c.n_epochs):
            # one permutation per seed, from that seed's stream (``minibatches`` draws the same for
            # a lone run; a stopped seed's lone run draws no more, so neither does it here)
            perms = torch.stack([torch.randperm(n, generator=g, device=self.device) if on
                                 else torch.arange(n, device=self.device)
                                 for g, on in zip(generators, active, strict=True)])
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
                loss, _, terms = ppo_loss(
                    c, log_probs, entropy, new_values, take(old_log_probs), take(values), take(advantages),
                    take(returns), clip, clip_vf, kl_coef,
                )
                if c.target_kl is not None:
                    # one host sync per minibatch, as a lone run with target_kl has
                    active_mask = active_mask & ~(terms["stats/approx_kl"] > 1.5 * c.target_kl)
                    active = active_mask.tolist()
                    if not any(active):
                        break
                for param in self.params:  # the optimizer may hold per-seed views, not these
                    param.grad = None
                loss.sum().backward()  # seed k's parameters get exactly d loss[k]
                if c.max_grad_norm is not None:
                    _clip_grad_norms(self.params, c.max_grad_norm)
                self._step(active)
                n_updates += active_mask
                for key, value in terms.items():
                    value = torch.where(active_mask, value, 0.0) if c.target_kl is not None else value
                    sums[key] = sums.get(key, 0.0) + value
            if not any(active):
                break
        metrics: dict[str, torch.Tensor | float] = {key: value / n_updates.clamp(min=1) for key, value in sums.items()}
        if self.kl_coef is not None and "stats/approx_kl" in metrics:
            adapted = adapt_kl_coef(self.kl_coef, metrics["stats/approx_kl"], c.kl_target)
            self.kl_coef = torch.where(n_updates > 0, adapted, self.kl_coef)  # a seed with no update keeps beta
            metrics["stats/kl_coef"] = self.kl_coef
        metrics["stats/explained_var"] = explained_variance(values, returns)
        metrics["stats/n_updates"] = n_updates
        metrics["stats/early_stop"] = (~active_mask).float()
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
        model = PPO(None, env_id, seed=seed, device=device, preset=preset, env_backend="native",
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

    batch = BatchedPPO(models, generators)
    _train(batch, total, run_dirs, stop_seconds, progress_bar, log_rows)
    batch.write_back()
    summaries = []
    for model, run_dir in zip(models, run_dirs, strict=True):
        model.policy.eval()
        if run_dir is None:
            summaries.append({"algo": model.name, "env_id": env_id, "seed": model.seed, "model": model,
                              "num_timesteps": model.num_timesteps, "train_seconds": model.train_seconds})
        else:
            summaries.append(finish_run(model, run_dir, eval_episodes))
    return summaries


def _train(batch: BatchedPPO, total: int, run_dirs, stop_seconds, progress_bar, log_rows) -> None:
    """The synchronous runner for K seeds: one RunLog per seed (its run folder, its episode
    window), so each seed's rows are the rows a lone run writes."""
    models, k = batch.models, batch.k
    logs = [RunLog(model, total, log_dir=run_dir, log_rows=log_rows) for model, run_dir in zip(models, run_dirs,
                                                                                               strict=True)]
    lead = logs[0]
    bar = None
    if progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="step", dynamic_ncols=True, desc=f"{k} seeds")
    started = time.perf_counter()
    try:
        while not lead.done:
            rollout, finished = batch.collect()
            metrics = batch.update(rollout, progress_remaining=lead.progress_remaining())
            steps = rollout.n_steps * batch.n_envs
            _check_finite(models, metrics, models[0].num_timesteps + steps)
            out_of_time = stop_seconds is not None and time.perf_counter() - started >= stop_seconds
            step = models[0].num_timesteps + steps
            row_due = out_of_time or step >= lead.target or step - lead.last_row_step >= lead.log_every
            # per-seed values only when a row is written: one host copy then, none otherwise
            per_seed = {key: (value.tolist() if isinstance(value, torch.Tensor) else [value] * k)
                        for key, value in metrics.items()} if row_due else None
            for i, (log, model) in enumerate(zip(logs, models, strict=True)):
                model.num_timesteps = step
                log.add_episodes(*finished[i])
                log.step({key: values[i] for key, values in per_seed.items()} if row_due else None, final=out_of_time)
            if bar is not None:
                bar.update(models[0].num_timesteps - bar.n)
                returns = [log.returns for log in logs if log.returns]
                if returns:
                    bar.set_postfix_str(f"return {mean_or_nan([mean_or_nan(r) for r in returns]):.1f} (mean of seeds)")
            if out_of_time:
                break
    finally:
        for log in logs:
            log.close()
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



__all__ = ["BATCHED_ALGOS", "BatchedPPO", "batched_unsupported", "build_models", "train_batched"]
