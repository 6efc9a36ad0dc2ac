"""Observations as pgrl carries them past the Gymnasium boundary, for every observation space.

| space                         | one env's observation      | batch of N (dtype)                       |
|-------------------------------|----------------------------|------------------------------------------|
| Box (any shape), not an image | shape                      | [N, *shape] float32                      |
| Box uint8 image (1/3/4 ch.)   | (C, H, W) or (H, W, C)     | [N, *shape] uint8 (kept: 4x less memory) |
| Discrete                      | ()                         | [N] float32 (index; one-hot in the policy) |
| MultiDiscrete                 | nvec.shape                 | [N, *shape] float32 (indices)            |
| MultiBinary                   | shape                      | [N, *shape] float32                      |
| Dict of the above (one level) | dict                       | ``TensorDict`` of the batches above      |

``TensorDict`` is a dict of tensors sharing leading (batch) dims that indexes, reshapes, copies
and concatenates like one tensor, so storage, minibatching and the algorithms' updates handle a
Dict observation with the code they use for a plain tensor.  Written here rather than taken from
the ``tensordict`` package: that package's compiled extension is tied to exact torch releases,
and pgrl needs only these few operations.

Tuple, nested Dict, Text, Graph and Sequence spaces are refused by ``check_observation_space``
(and action spaces other than Discrete, Box, MultiDiscrete, MultiBinary by ``check_action_space``)
with the Gymnasium wrapper that fixes them, as soon as an env is adapted.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pgrl.errors import EnvError

_LEAF_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


def is_image_space(space: gym.Space) -> bool:
    """A uint8 Box of 3 dims with 1, 3 or 4 channels first or last (SB3's rule, plus channel-first)."""
    if not isinstance(space, gym.spaces.Box) or space.dtype != np.uint8 or len(space.shape) != 3:
        return False
    return space.shape[0] in (1, 3, 4) or space.shape[-1] in (1, 3, 4)


def channels_last(space: gym.Space) -> bool:
    """Whether an image space is (H, W, C): its last dim is a channel count and its first is not."""
    return space.shape[-1] in (1, 3, 4) and space.shape[0] not in (1, 3, 4)


def has_image(space: gym.Space) -> bool:
    """An image space, or a Dict with an image key."""
    if isinstance(space, gym.spaces.Dict):
        return any(is_image_space(sub) for sub in space.spaces.values())
    return is_image_space(space)


def check_observation_space(space: gym.Space, algo: str = "pgrl") -> None:
    """Raise EnvError with one sentence naming the space and the wrapper that fixes it."""
    if isinstance(space, gym.spaces.Dict):
        for key, sub in space.spaces.items():
            if isinstance(sub, gym.spaces.Dict):
                raise EnvError(f"{algo} handles Dict observations one level deep; the key '{key}' holds another "
                               "Dict: flatten it with gymnasium.wrappers.FlattenObservation or your own wrapper")
            if not isinstance(sub, _LEAF_SPACES):
                raise EnvError(f"{algo} cannot use the Dict observation key '{key}' of space {type(sub).__name__}; "
                               "flatten it with gymnasium.wrappers.FlattenObservation")
        return
    if isinstance(space, _LEAF_SPACES):
        return
    name = type(space).__name__
    fix = ("gymnasium.wrappers.FlattenObservation" if isinstance(space, gym.spaces.Tuple)
           else "a gymnasium.ObservationWrapper that turns it into a Box")
    raise EnvError(f"{algo} cannot use {name} observation spaces ({space}); convert them with {fix}")


ACTION_SPACES = (gym.spaces.Discrete, gym.spaces.Box, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


def check_action_space(space: gym.Space, algo: str = "pgrl") -> None:
    """Raise EnvError with one sentence naming an action space pgrl's policies cannot act in."""
    if isinstance(space, gym.spaces.Box):
        if not np.issubdtype(space.dtype, np.floating):
            raise EnvError(f"{algo} handles Box action spaces of floats, not {space.dtype} ({space}); "
                           "use a Discrete or MultiDiscrete space for integer actions")
    elif not isinstance(space, ACTION_SPACES):
        name = type(space).__name__
        fix = ("flatten it into one MultiDiscrete or Box space with a gymnasium.ActionWrapper"
               if isinstance(space, gym.spaces.Tuple | gym.spaces.Dict) else "wrap the env so it acts on one")
        raise EnvError(f"{algo} handles Discrete, Box, MultiDiscrete and MultiBinary action spaces, not {name} "
                       f"{space}; {fix}")


def storage_dtype(space: gym.Space) -> torch.dtype:
    return torch.uint8 if is_image_space(space) else torch.float32


def space_shape(space: gym.Space) -> tuple[int, ...]:
    return tuple(space.shape or ())


class TensorDict(dict):
    """str -> tensor with common leading dims; any other index applies to every tensor.

    ``shape`` is the batch shape (the leading dims), and ``reshape`` / ``view`` take a new batch
    shape; each tensor keeps its own trailing (event) dims.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], event_ndims: dict[str, int]):
        super().__init__(tensors)
        self.event_ndims = event_ndims

    def _new(self, tensors: dict[str, torch.Tensor]) -> TensorDict:
        return TensorDict(tensors, self.event_ndims)

    def apply(self, fn) -> TensorDict:
        return self._new({k: fn(v) for k, v in self.items()})

    def __getitem__(self, key):
        if isinstance(key, str):
            return dict.__getitem__(self, key)
        return self.apply(lambda v: v[key])

    def __setitem__(self, key, value) -> None:
        if isinstance(key, str):
            dict.__setitem__(self, key, value)
            return
        for name, tensor in self.items():
            tensor[key] = value[name]

    @property
    def shape(self) -> torch.Size:
        name, tensor = next(iter(self.items()))
        return tensor.shape[: tensor.dim() - self.event_ndims[name]]

    @property
    def device(self) -> torch.device:
        return next(iter(self.values())).device

    def reshape(self, *batch_shape) -> TensorDict:
        return self._new({k: v.reshape(*batch_shape, *v.shape[v.dim() - self.event_ndims[k]:])
                          for k, v in self.items()})

    view = reshape

    def to(self, *args, **kwargs) -> TensorDict:
        return self.apply(lambda v: v.to(*args, **kwargs))

    def clone(self) -> TensorDict:
        return self.apply(torch.clone)

    def copy_(self, other: TensorDict) -> TensorDict:
        for name, tensor in self.items():
            tensor.copy_(other[name])
        return self

    def cpu(self) -> TensorDict:
        return self.apply(lambda v: v.cpu())

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.cat, torch.stack):
            parts = args[0]
            first = parts[0]
            return first._new({k: func([p[k] for p in parts], *args[1:], **kwargs) for k in first})
        raise TypeError(f"pgrl's TensorDict does not support {getattr(func, '__name__', func)}")


Obs = torch.Tensor | TensorDict


def all_finite(obs: Obs) -> torch.Tensor:
    """One bool tensor: every float entry of obs is finite (integer images always are)."""
    if isinstance(obs, TensorDict):
        return torch.stack([all_finite(v) for v in obs.values()]).all()
    return torch.isfinite(obs).all()


def allocate(space: gym.Space, lead: tuple[int, ...], device: torch.device) -> Obs:
    """Zeros for observations of ``space`` with leading dims ``lead`` (storage)."""
    if isinstance(space, gym.spaces.Dict):
        return TensorDict({k: allocate(s, lead, device) for k, s in space.spaces.items()}, event_ndims(space))
    return torch.zeros((*lead, *space_shape(space)), dtype=storage_dtype(space), device=device)


def event_ndims(space: gym.Dict) -> dict[str, int]:
    return {k: len(space_shape(s)) for k, s in space.spaces.items()}


def to_tensor(obs: Any, space: gym.Space, device: torch.device) -> Obs:
    """A batch of observations from numpy (Gymnasium's batched layout) as pgrl's tensors."""
    if isinstance(space, gym.spaces.Dict):
        return TensorDict({k: to_tensor(obs[k], s, device) for k, s in space.spaces.items()}, event_ndims(space))
    return torch.as_tensor(np.asarray(obs), dtype=storage_dtype(space), device=device)


def batch_from_user(observation: Any, space: gym.Space, device: torch.device,
                    what: str = "predict") -> tuple[Obs, bool]:
    """One observation or a batch, as a user passes it to predict: tensors [B, ...], and whether it was one."""
    if isinstance(space, gym.spaces.Dict):
        if not isinstance(observation, dict):
            raise EnvError(f"{what} takes a dict of arrays with the keys {sorted(space.spaces)} for this Dict "
                           f"observation space, not {type(observation).__name__}")
        missing = sorted(set(space.spaces) - set(observation))
        if missing:
            raise EnvError(f"{what} got a dict observation without the keys {missing}; it needs {sorted(space.spaces)}")
        parts = {k: batch_from_user(observation[k], s, device, f"{what}['{k}']") for k, s in space.spaces.items()}
        singles = {single for _, single in parts.values()}
        if len(singles) > 1:
            raise EnvError(f"{what} got a dict observation mixing single observations and batches; "
                           "give every key the same leading batch dim")
        return TensorDict({k: t for k, (t, _) in parts.items()}, event_ndims(space)), singles.pop()
    shape = space_shape(space)
    try:
        array = np.asarray(observation)
        if array.dtype == object:
            raise TypeError("the observation holds Python objects")
        obs = torch.as_tensor(array.astype(np.uint8 if is_image_space(space) else np.float32, copy=False),
                              device=device)
    except (TypeError, ValueError) as exc:
        raise EnvError(f"{what} takes an array of observations of shape {shape} or [B, *{shape}], "
                       f"not {type(observation).__name__} ({exc})") from None
    single = tuple(obs.shape) == shape
    if single:
        obs = obs.unsqueeze(0)
    if tuple(obs.shape[1:]) != shape:
        raise EnvError(f"{what} got observations of shape {tuple(obs.shape)}; expected {shape} or [B, *{shape}]")
    return obs, single


def flat_tensors(obs: Obs, prefix: str) -> dict[str, torch.Tensor]:
    """Named tensors for a checkpoint: ``prefix`` for a tensor, ``prefix.key`` for each Dict key."""
    if isinstance(obs, TensorDict):
        return {f"{prefix}.{k}": v for k, v in obs.items()}
    return {prefix: obs}
