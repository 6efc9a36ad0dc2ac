"""Stable-Baselines3 side of the side-by-side benchmarks (needs the pgrl[bench] extra)."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from benchmarks.common import SolveResult

# rl-zoo's tuned CartPole-v1 hyperparameters (hyperparams/ppo.yml and a2c.yml).
ZOO_PPO = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0)
ZOO_A2C = dict(ent_coef=0.0)
ZOO_N_ENVS = 8


def _sb3():
    try:
        import stable_baselines3
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise SystemExit("the SB3 comparison needs the bench extra: make bench installs it") from exc
    return stable_baselines3


def greedy_return(model, n_episodes: int = 100, seed: int = 10**6) -> float:
    """Greedy mean return of an SB3 model on Gymnasium's CartPole-v1, all episodes stepped together."""
    envs = gym.make_vec("CartPole-v1", num_envs=n_episodes, vectorization_mode="sync")
    obs, _ = envs.reset(seed=seed)
    returns = np.zeros(n_episodes)
    ended = np.zeros(n_episodes, dtype=bool)
    while not ended.all():
        actions, _ = model.predict(obs, deterministic=True)
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        returns += rewards * ~ended
        ended |= terminated | truncated
    envs.close()
    return float(returns.mean())


def make_model(algo: str, seed: int):
    sb3 = _sb3()
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env("CartPole-v1", n_envs=ZOO_N_ENVS, seed=seed * 1000)
    if algo == "ppo":
        from stable_baselines3.common.utils import LinearSchedule

        return sb3.PPO("MlpPolicy", env, learning_rate=LinearSchedule(1e-3, 0.0, 1.0),
                       clip_range=LinearSchedule(0.2, 0.0, 1.0), seed=seed, device="cpu", **ZOO_PPO)
    return sb3.A2C("MlpPolicy", env, seed=seed, device="cpu", **ZOO_A2C)


def train_seconds(algo: str, seed: int, total: int) -> float:
    model = make_model(algo, seed)
    start = time.perf_counter()
    model.learn(total)
    return time.perf_counter() - start


def time_to_solve(algo: str, seed: int, budget: int, eval_every: int, threshold: float = 475.0) -> SolveResult:
    """Train until the greedy 100-episode mean reaches threshold; evaluation time is excluded."""
    from stable_baselines3.common.callbacks import BaseCallback

    model = make_model(algo, seed)
    state = {"next": eval_every, "paused": 0.0, "solved": False, "steps": budget, "last": float("nan")}

    class Check(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps < state["next"]:
                return True
            t0 = time.perf_counter()
            state["next"] = self.num_timesteps + eval_every
            state["last"] = greedy_return(self.model)
            if state["last"] >= threshold:
                state.update(solved=True, steps=self.num_timesteps)
            state["paused"] += time.perf_counter() - t0
            return not state["solved"]

    start = time.perf_counter()
    model.learn(budget, callback=Check())
    seconds = time.perf_counter() - start - state["paused"]
    if not state["solved"]:
        state["last"] = greedy_return(model)
        state["solved"] = state["last"] >= threshold
    return SolveResult(state["solved"], state["steps"], seconds, state["last"])


def mujoco_ppo_seconds(env_id: str, hparams: dict, seed: int, total: int) -> float:
    """Training seconds of SB3's PPO on a Gymnasium env with pgrl's preset ``hparams`` (rl-zoo's names).

    ``normalize``/``normalize_reward`` become SB3's VecNormalize (observations / rewards, clipped
    at 10) and policy_kwargs its network settings, so both libraries train the same model.
    """
    sb3 = _sb3()
    import torch
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    hp = dict(hparams)
    n_envs = hp.pop("n_envs", 1)
    hp.pop("n_timesteps", None)
    norm_obs, norm_reward = hp.pop("normalize", False), hp.pop("normalize_reward", False)
    pk = dict(hp.pop("policy_kwargs", {}))
    activations = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU, "gelu": torch.nn.GELU}
    pk["activation_fn"] = activations[pk.get("activation_fn", "tanh")]
    pk.pop("shared", None)
    for key in ("learning_rate", "clip_range"):
        if isinstance(hp.get(key), str) and hp[key].startswith("lin_"):
            from stable_baselines3.common.utils import LinearSchedule

            hp[key] = LinearSchedule(float(hp[key][4:]), 0.0, 1.0)
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed * 1000)
    if norm_obs or norm_reward:
        env = VecNormalize(env, norm_obs=norm_obs, norm_reward=norm_reward, gamma=hp.get("gamma", 0.99))
    model = sb3.PPO("MlpPolicy", env, seed=seed, device="cpu", policy_kwargs=pk, **hp)
    start = time.perf_counter()
    model.learn(total)
    seconds = time.perf_counter() - start
    env.close()
    return seconds
