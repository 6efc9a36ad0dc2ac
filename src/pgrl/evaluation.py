"""evaluate_policy: mean and std of episode returns of a trained model."""

from __future__ import annotations

import numpy as np
import torch

from pgrl.envs.base import VecEnv
from pgrl.envs.make import make_env


@torch.no_grad()
def evaluate_policy(
    model,
    env: str | VecEnv | None = None,
    n_eval_episodes: int = 10,
    deterministic: bool = True,
    seed: int | None = None,
    backend: str = "auto",
    return_episode_rewards: bool = False,
    max_steps: int = 100_000,
):
    """Run ``n_eval_episodes`` episodes (one per environment copy, all stepped together).

    ``env`` is an id (default: the model's), or a VecEnv whose copies each play one episode.
    Returns (mean, std) of the episode returns, or (returns, lengths) lists with
    return_episode_rewards, like Stable-Baselines3.  Evaluation seeds default to
    10**6 + model seed, away from the training seeds (seed * 1000 + i).
    """
    env_id = env if isinstance(env, str) else model.env_id
    own_env = not isinstance(env, VecEnv)
    vec = make_env(env_id, n_eval_episodes, backend=backend, device=model.device) if own_env else env
    try:
        obs = vec.reset(seed=10**6 + model.seed if seed is None else seed)
        n = vec.num_envs
        returns = torch.zeros(n, dtype=torch.float64, device=vec.device)
        lengths = torch.zeros(n, dtype=torch.int64, device=vec.device)
        ended = torch.zeros(n, dtype=torch.bool, device=vec.device)
        cap = min(vec.max_episode_steps or max_steps, max_steps)
        was_training = model.policy.training
        model.policy.eval()
        for t in range(cap):
            actions, _ = model.policy.act(model.normalize_obs(obs), deterministic=deterministic)
            step = vec.step(model.policy.to_env(actions))
            live = ~ended
            returns += step.rewards.double() * live
            lengths += live.long()
            ended |= step.terminated | step.truncated
            obs = step.obs
            if t % 16 == 15 and bool(ended.all()):
                break
        model.policy.train(was_training)
    finally:
        if own_env:
            vec.close()
    episode_returns = returns.cpu().numpy()
    if return_episode_rewards:
        return episode_returns.tolist(), lengths.cpu().numpy().tolist()
    return float(np.mean(episode_returns)), float(np.std(episode_returns))
