"""Steps a VecEnv with a policy and fills time-major storage.

The per-step loop does only tensor work: no ``.item()``, no host copies.  Episode returns are
tracked on the device and copied to the host once per rollout.  Values are *not* computed here:
algorithms get V(obs) and V(next_obs) for the whole rollout in one batched pass
(``pgrl.algos.common.rollout_values``), which is cheaper than a small forward per step.
"""

from __future__ import annotations

import torch

from pgrl.envs.base import VecEnv
from pgrl.envs.normalize import ObsNormalizer, RewardScaler
from pgrl.obs import flat_tensors
from pgrl.policies.actor_critic import ActorCriticPolicy
from pgrl.rollout.storage import Rollout


class Collector:
    def __init__(
        self,
        env: VecEnv,
        policy: ActorCriticPolicy,
        obs_normalizer: ObsNormalizer | None = None,
        reward_scaler: RewardScaler | None = None,
        sde_sample_freq: int = -1,
        clip_reward: float | None = None,
        stack: int | None = None,
    ):
        """``stack`` K: the policy and normalizers are K stacked seeds (pgrl.batched) and env
        columns k*N ... k*N+N-1 are seed k's; they see [K, N, ...] views of the [K*N, ...] batch."""
        self.env, self.policy, self.stack = env, policy, stack
        self.sde_sample_freq, self.clip_reward = sde_sample_freq, clip_reward
        self.obs_normalizer, self.reward_scaler = obs_normalizer, reward_scaler
        n, device = env.num_envs, env.device
        self.obs_shape = tuple(env.single_observation_space.shape or ())
        self.action_shape, self.action_dtype = policy.action_shape, policy.action_dtype
        self.episode_return = torch.zeros(n, device=device)
        self.episode_length = torch.zeros(n, dtype=torch.int64, device=device)
        self.obs: torch.Tensor | None = None
        self._storage: Rollout | None = None
        # LSTM policies: each env's recurrent state, and whether its next step starts an episode
        self.recurrent = policy.recurrent
        self.state = policy.initial_state(n, device) if self.recurrent else None
        self.episode_starts = torch.ones(n, dtype=torch.bool, device=device)
        #: pgrl.fast's fused rollout (CartPoleRollout) when it applies: collect() without on_step calls it
        self.fast = None

    def reset(self, seed: int | None = None) -> None:
        self.obs = self.env.reset(seed=seed)
        self.episode_return.zero_()
        self.episode_length.zero_()
        self.episode_starts = torch.ones_like(self.episode_starts)
        if self.recurrent:
            self.state.zero_()

    def metrics(self) -> dict[str, float]:
        """The collector's own row entries (Ray's collector reports restarts and workers)."""
        return {}

    # -- checkpoints --------------------------------------------------------------------------------
    def env_state(self) -> dict[str, torch.Tensor] | None:
        get_state = getattr(self.env, "get_state", None)
        return get_state() if get_state is not None else None

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """What a checkpoint needs to continue collecting exactly (env state only for native envs)."""
        tensors = {"collector.episode_return": self.episode_return, "collector.episode_length": self.episode_length}
        if self.recurrent:
            tensors.update({"collector.lstm_state": self.state, "collector.episode_starts": self.episode_starts})
        if self.obs is not None:
            tensors.update(flat_tensors(self.obs, "collector.obs"))
        if self.reward_scaler is not None:
            tensors.update({f"reward_scaler.{k}": v for k, v in self.reward_scaler.state_dict().items()})
        env_state = self.env_state()
        if env_state is not None:
            tensors.update({f"env.{k}": v for k, v in env_state.items()})
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> bool:
        """Restore ``state_tensors``; False when the env's state could not be put back (Gymnasium envs).

        Raises KeyError / ValueError / RuntimeError on missing or ill-shaped tensors.
        """
        device = self.env.device
        if self.reward_scaler is not None:
            state = {k: tensors[f"reward_scaler.{k}"] for k in self.reward_scaler.state_dict()}
            _check_like(state, self.reward_scaler.state_dict())
            self.reward_scaler.load_state_dict(state)
        env_keys = {k[len("env."):]: v for k, v in tensors.items() if k.startswith("env.")}
        set_state = getattr(self.env, "set_state", None)
        if set_state is None or not env_keys:
            if self.reward_scaler is not None:
                self.reward_scaler.returns.zero_()
            self.episode_return.zero_()
            self.episode_length.zero_()
            return False
        set_state(env_keys)
        mine = {"episode_return": self.episode_return, "episode_length": self.episode_length}
        if self.recurrent:
            mine.update({"lstm_state": self.state, "episode_starts": self.episode_starts})
        saved = {key: tensors[f"collector.{key}"] for key in mine}
        _check_like(saved, mine)
        for key, value in mine.items():
            value.copy_(saved[key].to(device))
        if "collector.obs" in tensors:  # native envs: one float32 tensor
            obs = tensors["collector.obs"]
            if tuple(obs.shape) != (self.env.num_envs, *self.obs_shape):
                raise ValueError(f"collector.obs has shape {tuple(obs.shape)}")
            self.obs = obs.to(device=device, dtype=torch.float32)
        return True

    def _normalize(self, obs: torch.Tensor, update: bool) -> torch.Tensor:
        return self.obs_normalizer(obs, update=update) if self.obs_normalizer is not None else obs

    # Stacked seeds see [K, N, ...] views of the env's [K*N, ...] tensors (identity otherwise).
    def _per_seed(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(self.stack, -1, *x.shape[1:]) if self.stack else x

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, *x.shape[2:]) if self.stack else x

    def _storage_for(self, n_steps: int) -> Rollout:
        if self._storage is None or self._storage.n_steps != n_steps:
            self._storage = Rollout.allocate(
                n_steps,
                self.env.num_envs,
                self.env.single_observation_space,
                self.action_shape,
                self.action_dtype,
                self.env.device,
            )
            masks = self.env.action_masks()
            if masks is not None:
                self._storage.action_masks = torch.ones((n_steps, *masks.shape), dtype=torch.bool,
                                                        device=self.env.device)
            if self.recurrent:
                self._storage.states = torch.zeros((n_steps, *self.state.shape), device=self.env.device)
                self._storage.episode_starts = torch.zeros_like(self._storage.terminated)
                self._storage.values = torch.zeros_like(self._storage.rewards)
        return self._storage

    def _step(self, rollout: Rollout, t: int, finished_returns: torch.Tensor, finished_lengths: torch.Tensor):
        if self.policy.use_sde and (t == 0 or (self.sde_sample_freq > 0 and t % self.sde_sample_freq == 0)):
            self.policy.reset_noise(self.env.num_envs // (self.stack or 1))
        obs = self._normalize(self._per_seed(self.obs), update=True)
        masks = self.env.action_masks()
        if self.recurrent:
            state = self.state.masked_fill(self.episode_starts.unsqueeze(1), 0.0)
            rollout.states[t], rollout.episode_starts[t] = state, self.episode_starts
            actions, log_probs, rollout.values[t], self.state = self.policy.step(obs, state, action_masks=masks)
        else:
            actions, log_probs = self.policy.act(obs, action_masks=masks)
        if masks is not None:
            rollout.action_masks[t] = masks
        actions, log_probs = self._flat(actions), self._flat(log_probs)
        step = self.env.step(self.policy.to_env(actions))
        dones = step.terminated | step.truncated
        record_episode_ends(self.episode_return, self.episode_length, step.rewards,
                            dones if step.episode_over is None else step.episode_over,
                            finished_returns[t], finished_lengths[t])
        rewards = step.rewards
        if self.reward_scaler is not None:
            rewards = self._flat(self.reward_scaler(self._per_seed(rewards), self._per_seed(dones)))
        elif self.clip_reward is not None:
            rewards = rewards.clamp(-self.clip_reward, self.clip_reward)
        rollout.obs[t] = self._flat(obs)
        rollout.actions[t] = actions
        rollout.log_probs[t] = log_probs
        rollout.rewards[t] = rewards
        rollout.terminated[t] = step.terminated
        rollout.truncated[t] = step.truncated
        final_obs = self._flat(self._normalize(self._per_seed(step.final_obs), update=False))
        if rollout.next_obs is not None:
            rollout.next_obs[t] = final_obs
        elif bool(dones.any()):  # compact storage (images): keep only the observations episodes ended on
            envs = dones.nonzero().squeeze(1)
            rollout.finals.append((t, envs, final_obs[envs].clone()))
        if self.recurrent:
            self.episode_starts = dones
            # A time limit's bootstrap value needs this step's state: computed now, for the cut envs only
            # (one host sync per step, which CPU runs do not notice).
            if bool(step.truncated.any()):
                envs = step.truncated.nonzero().squeeze(1)
                rollout.bootstrap.append((t, envs, self.policy.state_value(final_obs[envs], self.state[envs])))
        self.obs = step.obs
        self.last_step = step
        return dones

    @torch.no_grad()
    def collect(self, n_steps: int, on_step=None) -> Rollout:
        """n_steps steps of every environment; episodes continue across rollouts.

        ``on_step(step)`` runs after every step (a callback's hook); False stops the rollout
        there, with ``rollout.stopped`` set (the rollout is then not for training)."""
        if self.obs is None:
            self.reset()
        rollout = self._storage_for(n_steps)
        rollout.valid.fill_(True)
        rollout.stopped = False
        rollout.finals, rollout.bootstrap = [], []
        finished_returns = torch.empty_like(rollout.rewards)
        finished_lengths = torch.empty_like(rollout.log_probs, dtype=torch.int64)
        if self.fast is not None and on_step is None:  # pgrl.fast: the whole rollout in one kernel call
            self.fast.collect(rollout, finished_returns, finished_lengths)
        else:
            for t in range(n_steps):
                self._step(rollout, t, finished_returns, finished_lengths)
                if on_step is not None and not on_step(self.last_step):
                    rollout.stopped = True
                    return rollout
        self._record(rollout, finished_returns, finished_lengths, None)
        self._close_compact(rollout)
        return rollout

    def _close_compact(self, rollout: Rollout) -> None:
        """Compact storage: the observation after the last step stands in for its next_obs.
        LSTM policies: its value, from the state after the last step."""
        if rollout.next_obs is None or self.recurrent:
            rollout.last_obs = self._flat(self._normalize(self._per_seed(self.obs), update=False))
        if self.recurrent:
            rollout.last_values = self.policy.state_value(rollout.last_obs, self.state)

    @torch.no_grad()
    def collect_episodes(self, max_steps: int, on_step=None) -> Rollout:
        """One whole episode from every environment, for Monte-Carlo methods.

        All environments are reset, then stepped until each has finished one episode; steps of
        an environment after its episode ended are marked invalid.  ``max_steps`` caps the
        length (the env's time limit); an episode still running then counts as truncated.
        """
        self.reset()
        rollout = self._storage_for(max_steps)
        rollout.finals = []
        finished_returns = torch.empty_like(rollout.rewards)
        finished_lengths = torch.empty_like(rollout.log_probs, dtype=torch.int64)
        ended = torch.zeros(self.env.num_envs, dtype=torch.bool, device=self.env.device)
        length = max_steps
        rollout.stopped = False
        for t in range(max_steps):
            rollout.valid[t] = ~ended
            ended |= self._step(rollout, t, finished_returns, finished_lengths)
            if on_step is not None and not on_step(self.last_step):
                rollout.stopped = True
                return rollout
            # One host sync every 16 steps to learn whether every episode is over.
            if t % 16 == 15 and bool(ended.all()):
                length = t + 1
                break
        self._close_compact(rollout)
        rollout = rollout.truncate(length)
        last = rollout.valid[-1] & ~ended
        rollout.truncated[-1] |= last  # cut by max_steps: ends here, never bootstrapped by MC methods
        self._record(rollout, finished_returns[:length], finished_lengths[:length], rollout.valid)
        return rollout

    def _record(self, rollout: Rollout, returns: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor | None):
        """Finished episodes' returns and lengths onto the rollout, with one host copy; stacked
        seeds also get ``rollout.seed_episodes``: (returns, lengths) of each seed."""
        mask = ~torch.isnan(returns)
        if valid is not None:
            mask &= valid
        if not self.stack:
            rollout.episode_returns = returns[mask].tolist()
            rollout.episode_lengths = lengths[mask].tolist()
            return
        # seed-major, time order within each seed (how a lone run of that seed lists them)
        per_seed = [x.reshape(x.shape[0], self.stack, -1).transpose(0, 1).reshape(self.stack, -1).cpu()
                    for x in (returns, lengths, mask)]
        rollout.seed_episodes = [(r[m].tolist(), n[m].tolist()) for r, n, m in zip(*per_seed, strict=True)]
        rollout.episode_returns = [x for seed_returns, _ in rollout.seed_episodes for x in seed_returns]
        rollout.episode_lengths = [x for _, seed_lengths in rollout.seed_episodes for x in seed_lengths]


def record_episode_ends(
    episode_return: torch.Tensor,
    episode_length: torch.Tensor,
    rewards: torch.Tensor,
    dones: torch.Tensor,
    returns_out: torch.Tensor,
    lengths_out: torch.Tensor,
) -> None:
    """Add one step to the running episode sums [N]; where an episode ended, write its return and
    length into ``returns_out`` / ``lengths_out`` [N] (nan / 0 elsewhere) and restart its sums."""
    episode_return += rewards
    episode_length += 1
    returns_out.copy_(torch.where(dones, episode_return, torch.nan))
    lengths_out.copy_(torch.where(dones, episode_length, 0))
    episode_return.masked_fill_(dones, 0.0)
    episode_length.masked_fill_(dones, 0)


def _check_like(saved: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    for key, value in expected.items():
        if saved[key].shape != value.shape or saved[key].dtype != value.dtype:
            raise ValueError(f"{key} has shape {tuple(saved[key].shape)} {saved[key].dtype}, expected "
                             f"{tuple(value.shape)} {value.dtype}")
