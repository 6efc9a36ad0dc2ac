"""Small Gymnasium envs for checking that a policy handles each kind of space, and learns on it.

Each env has a trivial optimal policy, so a policy that cannot reach a reward of ~1 per step on
it is broken for that kind of space (wrong distribution, wrong preprocessing, a lost key).  The
names, arguments and reward rules of the identity envs follow Stable-Baselines3's
``stable_baselines3.common.envs`` test envs, so tests written against those carry over:

* ``IdentityEnv``: the observation is a target drawn from a space, the action space is that same
  space, and the reward is 1.0 when the action equals the target (else 0.0).  ``dim`` gives
  ``Discrete(dim)``; ``space`` takes any Gymnasium space.
* ``IdentityEnvBox``: the same for a one-dimensional ``Box``, where an action within ``eps`` of
  the target counts.
* ``IdentityEnvMultiDiscrete`` (``MultiDiscrete([dim, dim])``) and ``IdentityEnvMultiBinary``
  (``MultiBinary(dim)``): every entry has to match.

Two image envs check convolutional and multi-input policies:

* ``QuadrantImageEnv``: a uint8 image, black but for one small white square; the action
  (``Discrete(4)``) names the quadrant the square lies in.  Every image has the same pixel sum,
  so only the square's position tells the answer.  The default 36x36 is the smallest image
  Nature-CNN's convolutions (8x8 stride 4, 4x4 stride 2, 3x3 stride 1) accept.
* ``DictObsEnv``: a ``Dict`` observation with an ``"image"`` key (the quadrant image) and a
  ``"vec"`` key (float32, a one-hot "rotation" r of 4).  The right action is
  ``(quadrant + r) % 4``, so a policy that ignores either key gets 1/4 of the reward at best.

``InvalidActionEnv`` checks action masks, and ``MemoryEnv`` (repeat the first observation after
a delay) checks that a recurrent policy remembers.

Quadrants are numbered 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right.  The identity and image envs draw a
new target each step, never terminates and truncates after ``ep_length`` steps.  Randomness comes
only from ``self.np_random``, so ``reset(seed=s)`` fixes everything that follows it.  None renders:
``render_mode`` may only be None.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from pgrl.errors import EnvError

__all__ = [
    "DictObsEnv",
    "IdentityEnv",
    "IdentityEnvBox",
    "IdentityEnvMultiBinary",
    "IdentityEnvMultiDiscrete",
    "InvalidActionEnv",
    "MemoryEnv",
    "QuadrantImageEnv",
]

NUM_QUADRANTS = 4


def _check_render_mode(render_mode: str | None) -> None:
    if render_mode is not None:
        raise EnvError(f"render_mode {render_mode!r} is not supported: these test envs do not render; pass None")


def _check_ep_length(ep_length: int) -> None:
    if ep_length < 1:
        raise EnvError(f"ep_length must be at least 1, got {ep_length}")


def _matches(action: Any, target: Any) -> bool:
    """Whether ``action`` equals ``target``, entry by entry, for any (possibly nested) Gymnasium sample."""
    if isinstance(target, dict):
        return (
            isinstance(action, dict)
            and action.keys() == target.keys()
            and all(_matches(action[key], value) for key, value in target.items())
        )
    if isinstance(target, tuple):
        return (
            isinstance(action, tuple | list)
            and len(action) == len(target)
            and all(_matches(a, t) for a, t in zip(action, target, strict=True))
        )
    if isinstance(target, str):  # Text spaces
        return action == target
    action_arr, target_arr = np.asarray(action), np.asarray(target)
    # A Discrete action may come as a 0-d array, an int or a length-1 array: compare the values.
    return action_arr.size == target_arr.size and np.array_equal(action_arr.reshape(target_arr.shape), target_arr)


class IdentityEnv(gym.Env):
    """Observation = a target drawn from ``space``; reward 1.0 for the action that equals it.

    Args:
        dim: size of ``Discrete(dim)``, used when ``space`` is None (1 when both are None).
        space: the observation and action space (any Gymnasium space); give at most one of
            ``dim`` and ``space``.
        ep_length: steps per episode; the last one is truncated, none terminates.
        render_mode: must be None.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        dim: int | None = None,
        space: spaces.Space | None = None,
        ep_length: int = 100,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if space is None:
            space = spaces.Discrete(1 if dim is None else dim)
        elif dim is not None:
            raise EnvError("IdentityEnv takes dim or space, not both")
        _check_ep_length(ep_length)
        _check_render_mode(render_mode)
        self.render_mode = render_mode
        self.action_space = self.observation_space = space
        # Targets come from a private copy of the space, reseeded from self.np_random at each reset,
        # so seeding (or sampling from) env.action_space does not move the targets.
        self._target_space = copy.deepcopy(space)
        self.ep_length = ep_length
        self.current_step = 0
        self.state: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._target_space.seed(int(self.np_random.integers(2**32)))
        self.current_step = 0
        self._choose_next_state()
        return copy.deepcopy(self.state), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        reward = self._get_reward(action)
        self._choose_next_state()
        self.current_step += 1
        truncated = self.current_step >= self.ep_length
        return copy.deepcopy(self.state), reward, False, truncated, {}

    def _choose_next_state(self) -> None:
        self.state = self._target_space.sample()

    def _get_reward(self, action: Any) -> float:
        return 1.0 if _matches(action, self.state) else 0.0

    def render(self) -> None:
        return None


class IdentityEnvBox(IdentityEnv):
    """``IdentityEnv`` on ``Box(low, high, (1,), float32)``: reward 1.0 for an action within ``eps`` of the target."""

    def __init__(
        self,
        low: float = -1.0,
        high: float = 1.0,
        eps: float = 0.05,
        ep_length: int = 100,
        render_mode: str | None = None,
    ) -> None:
        if eps < 0:
            raise EnvError(f"eps must be non-negative, got {eps}")
        space = spaces.Box(low=low, high=high, shape=(1,), dtype=np.float32)
        super().__init__(space=space, ep_length=ep_length, render_mode=render_mode)
        self.eps = eps

    def _get_reward(self, action: Any) -> float:
        action_arr = np.asarray(action, dtype=np.float64)
        if action_arr.size != self.state.size:
            return 0.0
        distance = np.abs(action_arr.reshape(self.state.shape) - self.state.astype(np.float64))
        return 1.0 if bool(np.all(distance <= self.eps)) else 0.0


class IdentityEnvMultiDiscrete(IdentityEnv):
    """``IdentityEnv`` on ``MultiDiscrete([dim, dim])``: reward 1.0 when both entries match."""

    def __init__(self, dim: int = 1, ep_length: int = 100, render_mode: str | None = None) -> None:
        super().__init__(space=spaces.MultiDiscrete([dim, dim]), ep_length=ep_length, render_mode=render_mode)


class IdentityEnvMultiBinary(IdentityEnv):
    """``IdentityEnv`` on ``MultiBinary(dim)``: reward 1.0 when every bit matches."""

    def __init__(self, dim: int = 1, ep_length: int = 100, render_mode: str | None = None) -> None:
        super().__init__(space=spaces.MultiBinary(dim), ep_length=ep_length, render_mode=render_mode)


def _image_space(size: int, channels: int, channel_last: bool, square_size: int) -> spaces.Box:
    if channels < 1:
        raise EnvError(f"channels must be at least 1, got {channels}")
    if square_size < 1:
        raise EnvError(f"square_size must be at least 1, got {square_size}")
    if size < 2 * square_size:
        raise EnvError(
            f"size {size} cannot hold a {square_size}-pixel square in each quadrant; use size >= {2 * square_size}"
        )
    shape = (size, size, channels) if channel_last else (channels, size, size)
    return spaces.Box(low=0, high=255, shape=shape, dtype=np.uint8)


def _quadrant_image(
    rng: np.random.Generator, quadrant: int, size: int, channels: int, channel_last: bool, square_size: int
) -> np.ndarray:
    """A black uint8 image with one white ``square_size`` square at a random place wholly inside ``quadrant``."""
    half = size // 2
    top_rows = (0, half - square_size) if quadrant < 2 else (half, size - square_size)
    left_cols = (0, half - square_size) if quadrant % 2 == 0 else (half, size - square_size)
    row = int(rng.integers(top_rows[0], top_rows[1], endpoint=True))
    col = int(rng.integers(left_cols[0], left_cols[1], endpoint=True))
    image = np.zeros((size, size, channels) if channel_last else (channels, size, size), dtype=np.uint8)
    if channel_last:
        image[row : row + square_size, col : col + square_size, :] = 255
    else:
        image[:, row : row + square_size, col : col + square_size] = 255
    return image


class QuadrantImageEnv(gym.Env):
    """A uint8 image with one white square; the action (``Discrete(4)``) names its quadrant; reward 1.0 if right.

    Args:
        size: image height and width (36, the default, is the least a Nature CNN takes).
        channels: colour channels (the square is white in all of them).
        channel_last: shape (size, size, channels) instead of (channels, size, size).
        square_size: side of the square in pixels; it always lies wholly inside one quadrant.
        ep_length: steps per episode; the last one is truncated, none terminates.
        render_mode: must be None.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        size: int = 36,
        channels: int = 1,
        channel_last: bool = False,
        square_size: int = 4,
        ep_length: int = 100,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        _check_ep_length(ep_length)
        _check_render_mode(render_mode)
        self.render_mode = render_mode
        self.observation_space = _image_space(size, channels, channel_last, square_size)
        self.action_space = spaces.Discrete(NUM_QUADRANTS)
        self.size, self.channels, self.channel_last, self.square_size = size, channels, channel_last, square_size
        self.ep_length = ep_length
        self.current_step = 0
        self.quadrant = 0
        self._image = np.zeros(self.observation_space.shape, dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.current_step = 0
        self._choose_next_state()
        return self._image.copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = 1.0 if _matches(action, self.quadrant) else 0.0
        self._choose_next_state()
        self.current_step += 1
        truncated = self.current_step >= self.ep_length
        return self._image.copy(), reward, False, truncated, {}

    def _choose_next_state(self) -> None:
        self.quadrant = int(self.np_random.integers(NUM_QUADRANTS))
        self._image = _quadrant_image(
            self.np_random, self.quadrant, self.size, self.channels, self.channel_last, self.square_size
        )

    def render(self) -> None:
        return None


class DictObsEnv(gym.Env):
    """Dict observation: ``"image"`` shows a square in quadrant q, ``"vec"`` is a one-hot rotation r.

    The action space is ``Discrete(4)`` and the reward is 1.0 for the action ``(q + r) % 4``, so a
    policy needs both keys.  With ``pair=True`` the action is ``MultiDiscrete([4, 4])`` and the
    reward is 1.0 for ``(q, r)``: both keys still matter (either alone scores 25%), but each
    entry depends on one key, which policy-gradient methods learn far faster than the sum.
    In the spirit of Stable-Baselines3's ``SimpleMultiObsEnv`` (a multi-input test env), but a
    one-step task, so wrong preprocessing of either key shows at once.

    Args:
        image_size: image height and width (36 by default so that a Nature CNN fits; 16 works with
            smaller encoders).
        channels: colour channels of the image.
        channel_last: image shape (size, size, channels) instead of (channels, size, size).
        square_size: side of the square in pixels.
        ep_length: steps per episode; the last one is truncated, none terminates.
        pair: answer (q, r) with a MultiDiscrete action instead of (q + r) % 4.
        render_mode: must be None.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        image_size: int = 36,
        channels: int = 1,
        channel_last: bool = False,
        square_size: int = 4,
        ep_length: int = 100,
        pair: bool = False,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        _check_ep_length(ep_length)
        _check_render_mode(render_mode)
        self.render_mode = render_mode
        self.observation_space = spaces.Dict(
            {
                "image": _image_space(image_size, channels, channel_last, square_size),
                "vec": spaces.Box(low=0.0, high=1.0, shape=(NUM_QUADRANTS,), dtype=np.float32),
            }
        )
        self.pair = bool(pair)
        self.action_space = (spaces.MultiDiscrete([NUM_QUADRANTS, NUM_QUADRANTS]) if self.pair
                             else spaces.Discrete(NUM_QUADRANTS))
        self.image_size, self.channels, self.channel_last = image_size, channels, channel_last
        self.square_size = square_size
        self.ep_length = ep_length
        self.current_step = 0
        self.quadrant = 0
        self.rotation = 0
        self._image = np.zeros(self.observation_space["image"].shape, dtype=np.uint8)

    @property
    def correct_action(self) -> int | np.ndarray:
        """The action that earns the reward at the current step."""
        if self.pair:
            return np.array([self.quadrant, self.rotation], dtype=np.int64)
        return (self.quadrant + self.rotation) % NUM_QUADRANTS

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.current_step = 0
        self._choose_next_state()
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        reward = 1.0 if _matches(action, self.correct_action) else 0.0
        self._choose_next_state()
        self.current_step += 1
        truncated = self.current_step >= self.ep_length
        return self._obs(), reward, False, truncated, {}

    def _choose_next_state(self) -> None:
        self.quadrant = int(self.np_random.integers(NUM_QUADRANTS))
        self.rotation = int(self.np_random.integers(NUM_QUADRANTS))
        self._image = _quadrant_image(
            self.np_random, self.quadrant, self.image_size, self.channels, self.channel_last, self.square_size
        )

    def _obs(self) -> dict[str, np.ndarray]:
        vec = np.zeros(NUM_QUADRANTS, dtype=np.float32)
        vec[self.rotation] = 1.0
        return {"image": self._image.copy(), "vec": vec}

    def render(self) -> None:
        return None


class InvalidActionEnv(gym.Env):
    """The identity task where most actions are invalid, with masks as sb3-contrib's envs give them.

    The observation is the target (``Discrete(dim)``, or ``MultiDiscrete([dim] * entries)``) and the
    action space the same; each step ``n_invalid`` actions other than the target (per entry) are
    invalid.  The reward is 1.0 for the target, 0.0 for another valid action and ``penalty`` for an
    invalid one (counted in ``invalid_actions``).  ``mask_via``: "method" (``action_masks()``, as
    sb3-contrib's ActionMasker), "info" (``info["action_mask"]``) or "obs" (a Dict observation
    ``{"target": ..., "action_mask": MultiBinary}``) or "none" (the same task with no masks shown:
    the unmasked baseline).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, dim: int = 20, n_invalid: int = 15, penalty: float = -10.0, entries: int | None = None,
                 ep_length: int = 100, mask_via: str = "method", render_mode: str | None = None) -> None:
        super().__init__()
        _check_ep_length(ep_length)
        _check_render_mode(render_mode)
        if not 0 <= n_invalid < dim:
            raise EnvError(f"n_invalid must be in [0, dim), got {n_invalid} for dim {dim}")
        if mask_via not in ("method", "info", "obs", "none"):
            raise EnvError(f"mask_via must be 'method', 'info', 'obs' or 'none', not {mask_via!r}")
        self.dim, self.n_invalid, self.penalty, self.entries = dim, n_invalid, float(penalty), entries
        self.ep_length, self.mask_via, self.render_mode = ep_length, mask_via, render_mode
        target = spaces.Discrete(dim) if entries is None else spaces.MultiDiscrete([dim] * entries)
        self.action_space = target
        width = dim * (entries or 1)
        self.observation_space = (spaces.Dict({"target": target, "action_mask": spaces.MultiBinary(width)})
                                  if mask_via == "obs" else target)
        self.invalid_actions, self.current_step = 0, 0
        self.target = np.zeros(entries or 1, dtype=np.int64)
        self.mask = np.ones((entries or 1, dim), dtype=bool)

        if mask_via == "method":  # only then does the env have sb3-contrib's action_masks()
            self.action_masks = self._current_mask

    def _current_mask(self) -> np.ndarray:
        """Valid actions of the current step: bool [dim] (MultiDiscrete: [entries * dim])."""
        return self.mask.reshape(-1).copy()

    def _new_target(self) -> None:
        rows = self.entries or 1
        self.target = self.np_random.integers(self.dim, size=rows)
        self.mask = np.ones((rows, self.dim), dtype=bool)
        for row in range(rows):
            others = np.delete(np.arange(self.dim), self.target[row])
            self.mask[row, self.np_random.choice(others, self.n_invalid, replace=False)] = False

    def _obs(self):
        target = int(self.target[0]) if self.entries is None else self.target.copy()
        if self.mask_via == "obs":
            return {"target": target, "action_mask": self.mask.reshape(-1).astype(np.int8)}
        return target

    def _info(self) -> dict:
        return {"action_mask": self._current_mask()} if self.mask_via == "info" else {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.current_step = 0
        self._new_target()
        return self._obs(), self._info()

    def step(self, action: Any):
        chosen = np.asarray(action, dtype=np.int64).reshape(-1)
        valid = bool(self.mask[np.arange(len(chosen)), chosen].all())
        if not valid:
            self.invalid_actions += 1
        reward = (1.0 if np.array_equal(chosen, self.target) else 0.0) if valid else self.penalty
        self._new_target()
        self.current_step += 1
        return self._obs(), reward, False, self.current_step >= self.ep_length, self._info()


class MemoryEnv(gym.Env):
    """Repeat the first observation ``delay`` steps later: solvable only with memory.

    The first observation shows a cue, one of ``n_symbols`` (one-hot); the next ``delay - 1`` are
    blank; then a query observation (the last entry set) asks for the cue.  The action taken at
    the query is rewarded +1 when it names the cue and -1 otherwise, and ends the episode; every
    earlier action gets 0.  A feed-forward policy sees the same query whatever the cue, so its
    greedy return is 2 / n_symbols - 1 at best (0 for two symbols); a policy that remembers gets 1.
    Observations: float32 [n_symbols + 1]; actions: ``Discrete(n_symbols)``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, n_symbols: int = 2, delay: int = 8, render_mode: str | None = None) -> None:
        super().__init__()
        _check_render_mode(render_mode)
        if not isinstance(n_symbols, int) or n_symbols < 2:
            raise EnvError(f"n_symbols must be an int of at least 2, got {n_symbols!r}")
        if not isinstance(delay, int) or delay < 1:
            raise EnvError(f"delay must be a positive int, got {delay!r}")
        self.n_symbols, self.delay, self.render_mode = n_symbols, delay, render_mode
        self.observation_space = spaces.Box(0.0, 1.0, (n_symbols + 1,), dtype=np.float32)
        self.action_space = spaces.Discrete(n_symbols)
        self.cue, self.current_step = 0, 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.n_symbols + 1, dtype=np.float32)
        if self.current_step == 0:
            obs[self.cue] = 1.0
        elif self.current_step == self.delay:
            obs[-1] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.cue, self.current_step = int(self.np_random.integers(self.n_symbols)), 0
        return self._obs(), {}

    def step(self, action: Any):
        if self.current_step < self.delay:
            self.current_step += 1
            return self._obs(), 0.0, False, False, {}
        return self._obs(), (1.0 if int(action) == self.cue else -1.0), True, False, {}
