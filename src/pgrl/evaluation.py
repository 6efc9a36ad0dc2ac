"""evaluate_policy: mean and std of episode returns of a trained model."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from pgrl.envs.make import describe_env_kind, to_vec_env
from pgrl.errors import EnvError


@torch.no_grad()
def evaluate_policy(
    model,
    env=None,
    n_eval_episodes: int = 10,
    deterministic: bool = True,
    seed: int | None = None,
    backend: str = "auto",
    return_episode_rewards: bool = False,
    max_steps: int = 100_000,
    render: bool = False,
    callback=None,
    reward_threshold: float | None = None,
    warn: bool = True,
    use_masking: bool = True,
):
    """Run ``n_eval_episodes`` episodes and return (mean, std) of their returns, or (returns,
    lengths) lists with ``return_episode_rewards``, like Stable-Baselines3.

    ``env``: an id or a factory (default: what the model was made from) gets one copy per
    episode, all stepped together; a gym.Env, a Gymnasium VectorEnv or a pgrl VecEnv is used as
    it is, copy i playing episodes i, i + N, ... (SB3's split).  Evaluation seeds default to
    10**6 + model seed, away from the training seeds (seed * 1000 + i).  ``max_steps`` caps each
    episode.  As SB3's: ``render`` renders every step (a Gymnasium env made with a render_mode),
    ``callback(locals, globals)`` runs after every step, ``reward_threshold`` raises an
    AssertionError when the mean return is not above it; ``warn`` is accepted for SB3's
    signature (pgrl counts whole episodes itself, with no Monitor wrapper to warn about).
    ``use_masking`` (sb3-contrib's): act with the env's action masks when it has them.
    """
    if env is None:
        env = getattr(model, "env_source", None) or model.env_id
        if isinstance(env, str) and env not in gym.registry:
            raise EnvError(f"{model.env_id} is not a registered id (the model was made from an env instance); "
                           "pass the env to evaluate on: evaluate_policy(model, env)")
    kind = describe_env_kind(env)
    if kind is None:
        raise EnvError(f"evaluate_policy needs an env id, a gymnasium env or a pgrl VecEnv, not {type(env).__name__}")
    own_env = kind in ("id", "factory", "instance", "vector")
    copies = n_eval_episodes if kind in ("id", "factory") else 1
    vec = to_vec_env(env, copies, backend=backend, device=model.device) if own_env else env
    if render and not callable(getattr(vec, "render", None)):
        if own_env:
            vec.close()
        raise EnvError(f"evaluate_policy(render=True) needs a Gymnasium env made with a render_mode; "
                       f"{vec.env_id} here is pgrl's native env, which does not render: pass "
                       "backend='gymnasium' or the env itself")
    try:
        obs = vec.reset(seed=10**6 + model.seed if seed is None else seed)
        n = vec.num_envs
        targets = torch.tensor([(n_eval_episodes + i) // n for i in range(n)], device=vec.device)
        counts = torch.zeros(n, dtype=torch.int64, device=vec.device)
        running = torch.zeros(n, dtype=torch.float64, device=vec.device)
        running_len = torch.zeros(n, dtype=torch.int64, device=vec.device)
        episodes: list[tuple[int, int, float, int]] = []  # (episode of its copy, copy, return, length)
        cap = min(vec.max_episode_steps or max_steps, max_steps) * int(targets.max())
        policy = model.policy
        was_training = policy.training
        policy.eval()
        finished = False
        if policy.recurrent:  # every copy starts an episode from a zero state
            state, starts = policy.initial_state(n, vec.device), torch.ones(n, dtype=torch.bool, device=vec.device)
        for _ in range(cap):
            masks = vec.action_masks() if use_masking else None
            if policy.recurrent:
                actions, _, _, state = policy.step(model.normalize_obs(obs), state, starts,
                                                   deterministic=deterministic, action_masks=masks)
            else:
                actions, _ = policy.act(model.normalize_obs(obs), deterministic=deterministic, action_masks=masks)
            step = vec.step(policy.to_env(actions))
            starts = step.terminated | step.truncated  # where the learner's episodes restart (and its states)
            live = counts < targets
            running += step.rewards.double()
            running_len += 1
            # whole episodes: an Atari game, not one of its lives (see pgrl.envs.base.Step)
            ends = step.terminated | step.truncated if step.episode_over is None else step.episode_over
            done = (ends | (running_len >= max_steps)) & live
            if bool(done.any()):  # one host copy per step with an episode end
                ended = done.nonzero().flatten()
                episodes += zip(counts[ended].tolist(), ended.tolist(), running[ended].tolist(),
                                running_len[ended].tolist(), strict=True)
                counts += done.long()
                finished = bool((counts >= targets).all())
            if render:
                vec.render()
            if callback is not None:
                callback(locals(), globals())
            running.masked_fill_(ends, 0.0)
            running_len.masked_fill_(ends, 0)
            obs = step.obs
            if finished:
                break
        policy.train(was_training)
    finally:
        if own_env:
            vec.close()
    episodes.sort()  # copy order within each round, as SB3 lists them
    returns, lengths = [e[2] for e in episodes], [e[3] for e in episodes]
    if reward_threshold is not None:
        mean = float(np.mean(returns))
        assert mean > reward_threshold, f"Mean reward below threshold: {mean:.2f} < {reward_threshold:.2f}"
    if return_episode_rewards:
        return returns, lengths
    return float(np.mean(returns)), float(np.std(returns))
