"""Features extractors: observations of any supported space -> one feature vector per row.

With Stable-Baselines3's names and contract: an extractor is built as
``cls(observation_space, **features_extractor_kwargs)``, has ``features_dim``, and its forward
gets *preprocessed* observations [B, ...] (``preprocess``: float32; images channel-first and, with
``normalize_images``, scaled by 1/255; Discrete and MultiDiscrete one-hot; Dict a dict of those),
so extractors written for SB3 port by changing the base class to pgrl's ``BaseFeaturesExtractor``.

| name               | for                         | network                                       |
|--------------------|-----------------------------|-----------------------------------------------|
| FlattenExtractor   | MlpPolicy (any non-Dict space) | flatten                                    |
| NatureCNN          | CnnPolicy (images)          | 3 convs (8/4, 4/2, 3/1) + linear, ReLU (DQN's) |
| CombinedExtractor  | MultiInputPolicy (Dict)     | NatureCNN per image key, flatten the others, concat |
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from pgrl.errors import ConfigError
from pgrl.obs import channels_last, is_image_space, space_shape


def image_space_channel_first(space: gym.spaces.Box) -> gym.spaces.Box:
    """The (C, H, W) space of an image space (itself when already channel-first)."""
    if not channels_last(space):
        return space
    h, w, c = space.shape
    return gym.spaces.Box(0, 255, (c, h, w), dtype=np.uint8)


def preprocessed_space(space: gym.Space) -> gym.Space:
    """The space extractors are built for: images channel-first, Dict key by key."""
    if isinstance(space, gym.spaces.Dict):
        return gym.spaces.Dict({k: preprocessed_space(s) for k, s in space.spaces.items()})
    return image_space_channel_first(space) if is_image_space(space) else space


def flat_dim(space: gym.Space) -> int:
    """Width of a space's observations once preprocessed and flattened."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    if isinstance(space, gym.spaces.Dict):
        return sum(flat_dim(s) for s in space.spaces.values())
    return int(np.prod(space_shape(space)))


def one_hot(index: torch.Tensor, n: int) -> torch.Tensor:
    """float32 one-hot [..., n] of integer ``index`` [...].  A scatter into zeros rather than
    nn.functional.one_hot, which checks the index range with a host sync (and costs several ops
    more) on every call: Discrete observations are one-hot encoded on every env step."""
    index = index.long()
    out = torch.zeros((*index.shape, n), dtype=torch.float32, device=index.device)
    return out.scatter_(-1, index.unsqueeze(-1), 1.0)


def preprocess(obs, space: gym.Space, normalize_images: bool = True):
    """Observations [B, ...] as stored (pgrl.obs) -> the float inputs extractors take."""
    if isinstance(space, gym.spaces.Dict):
        return {k: preprocess(obs[k], s, normalize_images) for k, s in space.spaces.items()}
    if isinstance(space, gym.spaces.Discrete):
        return one_hot(obs, int(space.n))
    if isinstance(space, gym.spaces.MultiDiscrete):
        flat = obs.long().reshape(obs.shape[0], -1)
        nvec = [int(n) for n in np.asarray(space.nvec).reshape(-1)]
        return torch.cat([one_hot(flat[:, i], n) for i, n in enumerate(nvec)], dim=-1)
    if is_image_space(space):
        x = obs.float()
        if channels_last(space):  # dims counted from the front: ONNX's exporter writes negative ones as they are
            x = x.movedim(x.dim() - 1, x.dim() - 3)
        return x / 255.0 if normalize_images else x
    return obs.float()


class BaseFeaturesExtractor(nn.Module):
    """Base class of extractors: built with the observation space and the width it outputs."""

    def __init__(self, observation_space: gym.Space, features_dim: int = 0):
        super().__init__()
        if features_dim <= 0:
            raise ConfigError(f"{type(self).__name__} must output at least one feature, not {features_dim}")
        self._observation_space, self._features_dim = observation_space, int(features_dim)

    @property
    def features_dim(self) -> int:
        return self._features_dim


class FlattenExtractor(BaseFeaturesExtractor):
    def __init__(self, observation_space: gym.Space):
        super().__init__(observation_space, flat_dim(observation_space))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations.reshape(observations.shape[0], -1)


class NatureCNN(BaseFeaturesExtractor):
    """The DQN paper's convolutional torso, for images at least 36x36 (inputs channel-first, as
    ``preprocess`` makes them; a channel-last space is built for as its transpose)."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 512, normalized_image: bool = False):
        if is_image_space(observation_space):
            observation_space = image_space_channel_first(observation_space)
        super().__init__(observation_space, features_dim)
        if not is_image_space(observation_space) and not normalized_image:
            raise ConfigError(f"CnnPolicy's NatureCNN takes uint8 image observations (C, H, W) or (H, W, C) with 1, 3 "
                              f"or 4 channels, not {observation_space}; use MlpPolicy for these observations")
        channels, height, width = observation_space.shape
        if min(height, width) < 36:
            raise ConfigError(f"NatureCNN needs images of at least 36x36 pixels, not {height}x{width}; resize them "
                              "with gymnasium.wrappers.ResizeObservation or pass a features_extractor_class")
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, channels, height, width)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


class CombinedExtractor(BaseFeaturesExtractor):
    """A NatureCNN for each image key of a Dict space, flatten for the others, concatenated."""

    def __init__(self, observation_space: gym.spaces.Dict, cnn_output_dim: int = 256, normalized_image: bool = False):
        extractors: dict[str, nn.Module] = {}
        total = 0
        for key, sub in observation_space.spaces.items():
            if is_image_space(sub) or (normalized_image and len(space_shape(sub)) == 3):
                extractors[key] = NatureCNN(sub, cnn_output_dim, normalized_image)
                total += cnn_output_dim
            else:
                extractors[key] = FlattenExtractor(sub)
                total += extractors[key].features_dim
        super().__init__(observation_space, total)
        self.extractors = nn.ModuleDict(extractors)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([extractor(observations[key]) for key, extractor in self.extractors.items()], dim=1)


EXTRACTORS: dict[str, type[BaseFeaturesExtractor]] = {
    "FlattenExtractor": FlattenExtractor, "NatureCNN": NatureCNN, "CombinedExtractor": CombinedExtractor,
}
POLICY_EXTRACTORS = {"MlpPolicy": "FlattenExtractor", "CnnPolicy": "NatureCNN", "MultiInputPolicy": "CombinedExtractor"}


def extractor_class(name_or_class) -> type[nn.Module]:
    """An extractor class from its name in EXTRACTORS, a "module:Class" path, or the class itself."""
    if not isinstance(name_or_class, str):
        return name_or_class
    if name_or_class in EXTRACTORS:
        return EXTRACTORS[name_or_class]
    module, sep, name = name_or_class.partition(":")
    if sep:
        import importlib

        try:
            return getattr(importlib.import_module(module), name)
        except Exception as exc:
            raise ConfigError(f"features_extractor_class {name_or_class} could not be imported "
                              f"({type(exc).__name__}: {exc})") from None
    raise ConfigError(f"unknown features_extractor_class '{name_or_class}'; use one of {', '.join(EXTRACTORS)} "
                      "or a module:Class path")


def init_extractor(module: nn.Module) -> None:
    """Orthogonal weights (gain sqrt 2) and zero biases for an extractor's conv and linear layers."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.orthogonal_(layer.weight, math.sqrt(2.0))
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
