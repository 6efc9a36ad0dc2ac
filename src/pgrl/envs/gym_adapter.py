"""Gymnasium vector environments behind pgrl's tensor VecEnv interface.

This is the only place numpy meets the rest of pgrl: observations, rewards and flags of all N
copies are converted once per step.  pgrl's contract is Gymnasium's SAME_STEP autoreset: the
observation an episode ended on arrives with the step (``final_obs``) and ``obs`` is already the
next episode's first one, so a truncated step can bootstrap and no step is a reset step.
Observations become tensors as pgrl.obs lays them out (uint8 images stay uint8, Dict spaces a
TensorDict).  An env that reports ``info["game_over"]`` (pgrl's Atari envs, where a lost life
ends the learner's episode) fills ``Step.episode_over``, so returns count whole games.

Vector envs pgrl builds run in SAME_STEP mode.  A vector env the user built keeps its mode:
SAME_STEP passes through; NEXT_STEP (Gymnasium's default) and DISABLED are served by resetting
the finished copies right after the step with ``reset(options={"reset_mask": done})``, so the
NEXT_STEP reset step (action ignored, reward 0) never happens and is never stored.  A vector env
in another mode that cannot reset part of its copies is refused with one sentence.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from pgrl.envs.base import Step, VecEnv, check_action_masks
from pgrl.errors import EnvError
from pgrl.obs import check_action_space, check_observation_space, to_tensor

SAME_STEP = gym.vector.AutoresetMode.SAME_STEP


class GymVecEnv(VecEnv):
    def __init__(
        self,
        env_fns: list[Callable[[], gym.Env]] | gym.vector.VectorEnv,
        env_id: str,
        vectorization: str = "sync",
        device: torch.device | str = "cpu",
    ):
        """``env_fns``: factories (pgrl builds a SAME_STEP Sync/Async vector env of them) or a
        vector env already built, used as it is."""
        if isinstance(env_fns, gym.vector.VectorEnv):
            self.vec = env_fns
        elif vectorization == "async":
            self.vec = gym.vector.AsyncVectorEnv(env_fns, shared_memory=True, autoreset_mode=SAME_STEP)
        else:
            self.vec = gym.vector.SyncVectorEnv(env_fns, autoreset_mode=SAME_STEP)
        mode = self.vec.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        self._masked_resets = mode != SAME_STEP
        partial_resets = isinstance(self.vec, gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv)
        if self._masked_resets and not partial_resets:
            raise EnvError(
                f"the vector env {type(self.vec).__name__} autoresets in {getattr(mode, 'value', mode)} mode and "
                "cannot reset some of its copies; build it with "
                "autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP or pass a factory of single envs instead"
            )
        self.env_id = env_id
        self.num_envs = self.vec.num_envs
        self.single_observation_space = self.vec.single_observation_space
        self.single_action_space = self.vec.single_action_space
        try:
            check_observation_space(self.single_observation_space, env_id)
            check_action_space(self.single_action_space, env_id)
        except EnvError:
            self.vec.close()
            raise
        self.device = torch.device(device)
        spec = self.vec.spec if getattr(self.vec, "spec", None) is not None else None
        self.max_episode_steps = getattr(spec, "max_episode_steps", None)
        if self.max_episode_steps is None and isinstance(self.vec, gym.vector.SyncVectorEnv):
            first = self.vec.envs[0].spec
            self.max_episode_steps = getattr(first, "max_episode_steps", None)
        self._action_dtype = self.single_action_space.dtype or np.float32
        self._mask_source: str | None = None  # found at the first reset, see _find_masks
        self._masks: torch.Tensor | None = None
        self._steps = 0  # vector steps since the last reset(), named in errors

    def _obs(self, obs):
        return to_tensor(obs, self.single_observation_space, self.device)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        seeds = None if seed is None else [seed + i for i in range(self.num_envs)]
        self._steps = 0
        try:
            obs, info = self.vec.reset(seed=seeds)
            _check_batch(obs, self.single_observation_space, self.num_envs)
        except (ValueError, TypeError) as exc:
            raise self._bad_obs("reset()", exc) from None
        if self._mask_source is None:
            self._mask_source = self._find_masks(obs, info)
        self._read_masks(obs, info)
        return self._obs(obs)

    # -- action masks (sb3-contrib's action_masks() method, info["action_mask"] or a Dict key) --------
    def action_masks(self) -> torch.Tensor | None:
        return self._masks

    def _find_masks(self, obs, info) -> str:
        if isinstance(self.vec, gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv):
            if all(self.vec.call("has_wrapper_attr", "action_masks")):
                return "method"
        if "action_mask" in info:
            return "info"
        if isinstance(obs, dict) and "action_mask" in obs:
            return "obs"
        return "none"

    def _read_masks(self, obs, info, reset_info=None, reset=None) -> None:
        """The masks of the observations just returned (``reset``: the copies reset after the step)."""
        if self._mask_source == "none":
            return
        if self._mask_source == "method":
            masks = np.stack([np.asarray(m) for m in self.vec.call("action_masks")])
        elif self._mask_source == "obs":
            masks = np.asarray(obs["action_mask"])
        else:
            masks = _info_masks(info, self._masks)
            if reset is not None and reset_info is not None and "action_mask" in reset_info:
                masks = np.where(reset.reshape(-1, 1), _info_masks(reset_info, self._masks), masks)
        masks = check_action_masks(np.asarray(masks).reshape(self.num_envs, -1), self.single_action_space,
                                   self.env_id, self._steps)
        self._masks = torch.as_tensor(masks, device=self.device)

    def _bad_obs(self, where: str, exc: Exception) -> EnvError:
        return EnvError(f"{self.env_id}'s {where} returned an observation that does not fit its observation_space "
                        f"{self.single_observation_space} ({exc}); make the env return arrays of that shape and dtype")

    def step(self, actions: torch.Tensor) -> Step:
        # in the space's own dtype (int64 for Discrete, float64 for a float64 Box), as SB3 sends them
        actions_np = actions.detach().cpu().numpy().astype(self._action_dtype, copy=False)
        try:
            obs, rewards, terminated, truncated, info = self.vec.step(actions_np)
        except (ValueError, TypeError) as exc:
            if "broadcast" not in str(exc) and "could not convert" not in str(exc):
                raise  # the env's own error, not a badly shaped observation
            raise self._bad_obs("step()", exc) from None
        self._steps += 1
        final_obs = obs
        done = np.logical_or(terminated, truncated)
        game_over = _game_over(info, done)
        reset_info = None
        if self._masked_resets:
            if done.any():
                final_obs = _map(lambda x: np.array(x, copy=True), obs)
                reset_obs, reset_info = self.vec.reset(options={"reset_mask": done})
                obs = _map(lambda new, old: np.where(done.reshape(-1, *([1] * (np.ndim(old) - 1))), new, old),
                           reset_obs, obs)
        elif "_final_obs" in info and info["_final_obs"].any():
            final_obs = _map(lambda x: np.array(x, copy=True), obs)
            for i in np.flatnonzero(info["_final_obs"]):
                _set_row(final_obs, i, info["final_obs"][i])
        self._read_masks(obs, info, reset_info, done)
        obs_t = self._obs(obs)
        return Step(
            obs=obs_t,
            rewards=torch.as_tensor(rewards, dtype=torch.float32, device=self.device),
            terminated=torch.as_tensor(terminated, dtype=torch.bool, device=self.device),
            truncated=torch.as_tensor(truncated, dtype=torch.bool, device=self.device),
            final_obs=obs_t if final_obs is obs else self._obs(final_obs),  # a step where no copy reset
            episode_over=None if game_over is None else torch.as_tensor(game_over, device=self.device),
        )

    def render(self):
        """The vector env's frames (its envs' render_mode decides what that is)."""
        return self.vec.render()

    def close(self) -> None:
        self.vec.close()


# Dict observations arrive from Gymnasium as a dict of batched arrays; these apply to both layouts.
def _map(fn, *obs):
    if isinstance(obs[0], dict):
        return {k: fn(*(o[k] for o in obs)) for k in obs[0]}
    return fn(*obs)


def _set_row(obs, i: int, value) -> None:
    if isinstance(obs, dict):
        for k in obs:
            obs[k][i] = value[k]
    else:
        obs[i] = value


def _game_over(info: dict, done: np.ndarray) -> np.ndarray | None:
    """Where a whole episode ended, for envs whose dones are shorter (pgrl's Atari episodic life):
    ``info["game_over"]`` of the step (in ``final_info`` when the vector env reset in the same step)."""
    final = info.get("final_info")
    source = final if isinstance(final, dict) and "game_over" in final else info
    if "game_over" not in source:
        return None
    return done & np.asarray(source["game_over"], dtype=bool)


def _info_masks(info: dict, previous: torch.Tensor | None) -> np.ndarray:
    """info["action_mask"] of a vector env's step; copies (or a step) that gave none allow every action."""
    if "action_mask" not in info:
        return np.ones(tuple(previous.shape), dtype=bool)
    masks = np.asarray(info["action_mask"], dtype=bool)
    masks = masks.reshape(masks.shape[0], -1)
    given = info.get("_action_mask")  # Gymnasium's vector envs: which copies gave the key
    return masks if given is None else masks | ~np.asarray(given, dtype=bool).reshape(-1, 1)


def _check_batch(obs, space: gym.Space, n: int) -> None:
    """Raise ValueError when a batch of observations is not [n, *shape] of the space's dtype kind."""
    if isinstance(space, gym.spaces.Dict):
        for key, sub in space.spaces.items():
            _check_batch(obs[key], sub, n)
        return
    array = np.asarray(obs)
    shape = tuple(space.shape or ())
    if array.shape != (n, *shape):
        raise ValueError(f"got shape {array.shape[1:]} per env, expected {shape}")
    if space.dtype is not None and array.dtype.kind not in "biuf":
        raise ValueError(f"got dtype {array.dtype}, expected {space.dtype}")
