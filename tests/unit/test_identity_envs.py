"""pgrl.envs.identity: the test envs pass Gymnasium's checker, reward the right action only, and seed."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from pgrl.envs.identity import (
    DictObsEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    QuadrantImageEnv,
)
from pgrl.errors import EnvError

IDENTITY_ENVS = {
    "discrete": lambda: IdentityEnv(dim=5, ep_length=20),
    "box": lambda: IdentityEnvBox(ep_length=20),
    "box_wide": lambda: IdentityEnvBox(low=-3.0, high=5.0, eps=0.1, ep_length=20),
    "multidiscrete": lambda: IdentityEnvMultiDiscrete(dim=4, ep_length=20),
    "multibinary": lambda: IdentityEnvMultiBinary(dim=6, ep_length=20),
    "space_box2d": lambda: IdentityEnv(space=spaces.Box(0.0, 1.0, (2, 3), np.float32), ep_length=20),
    "space_dict": lambda: IdentityEnv(
        space=spaces.Dict({"a": spaces.Discrete(3), "b": spaces.MultiBinary(2)}), ep_length=20
    ),
    "space_tuple": lambda: IdentityEnv(
        space=spaces.Tuple((spaces.Discrete(3), spaces.MultiDiscrete([2, 5]))), ep_length=20
    ),
}

IMAGE_ENVS = {
    "quadrant": lambda: QuadrantImageEnv(ep_length=20),
    "quadrant_rgb_last": lambda: QuadrantImageEnv(size=40, channels=3, channel_last=True, ep_length=20),
    "dict": lambda: DictObsEnv(ep_length=20),
    "dict_small": lambda: DictObsEnv(image_size=16, square_size=3, ep_length=20),
    "dict_rgb_last": lambda: DictObsEnv(channels=3, channel_last=True, ep_length=20),
}

ALL_ENVS = {**IDENTITY_ENVS, **IMAGE_ENVS}


def _wrong(action, space: gym.Space):
    """An action that differs from ``action`` (a sample of ``space``) in one entry."""
    if isinstance(space, spaces.Discrete):
        return space.start + (int(action) - space.start + 1) % int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        wrong = action.copy()
        wrong[0] = (wrong[0] + 1) % space.nvec[0]
        return wrong
    if isinstance(space, spaces.MultiBinary):
        wrong = action.copy()
        wrong[0] = 1 - wrong[0]
        return wrong
    if isinstance(space, spaces.Box):
        return action + 0.5
    if isinstance(space, spaces.Dict):
        key = next(iter(space.spaces))
        return {k: (_wrong(v, space[k]) if k == key else v) for k, v in action.items()}
    if isinstance(space, spaces.Tuple):
        return (_wrong(action[0], space[0]), *action[1:])
    raise NotImplementedError(space)


def _bright_pixels(image: np.ndarray, channel_last: bool) -> tuple[np.ndarray, np.ndarray]:
    plane = image[..., 0] if channel_last else image[0]
    return np.nonzero(plane)


def _quadrant(image: np.ndarray, channel_last: bool) -> int:
    """The quadrant of the white square, read off the pixels (0 TL, 1 TR, 2 BL, 3 BR)."""
    rows, cols = _bright_pixels(image, channel_last)
    size = image.shape[0] if channel_last else image.shape[1]
    half = size // 2
    return 2 * int(rows[0] >= half) + int(cols[0] >= half)


def _obs_equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_obs_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_obs_equal(x, y) for x, y in zip(a, b, strict=True))
    return np.array_equal(np.asarray(a), np.asarray(b))


def _rollout(env: gym.Env, seed: int | None, steps: int, first_reset: bool = True) -> list:
    env.action_space.seed(0)
    observations = [env.reset(seed=seed)[0]] if first_reset else []
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(obs)
        if terminated or truncated:
            observations.append(env.reset()[0])
    return observations


@pytest.mark.parametrize("name", list(ALL_ENVS))
def test_gymnasium_check_env_passes_without_warnings(name):
    env = ALL_ENVS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Gymnasium's advice for a Box action space not in [-1, 1] is expected for box_wide.
        warnings.filterwarnings("ignore", message=".*symmetric and normalized")
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("name", list(ALL_ENVS))
def test_observations_have_the_declared_dtypes_and_lie_in_the_space(name):
    env = ALL_ENVS[name]()
    obs, info = env.reset(seed=3)
    assert info == {}
    for _ in range(30):
        assert obs in env.observation_space
        if isinstance(env.observation_space, spaces.Dict) and isinstance(env, DictObsEnv):
            assert obs["image"].dtype == np.uint8 and obs["vec"].dtype == np.float32
        elif isinstance(env.observation_space, spaces.Box):
            assert obs.dtype == env.observation_space.dtype
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()


@pytest.mark.parametrize("name", list(IDENTITY_ENVS))
def test_identity_action_earns_one_every_step_and_episode_truncates_at_ep_length(name):
    env = IDENTITY_ENVS[name]()
    obs, _ = env.reset(seed=1)
    for step in range(1, env.ep_length + 1):
        obs, reward, terminated, truncated, _ = env.step(obs)
        assert reward == 1.0
        assert terminated is False
        assert truncated is (step == env.ep_length)


@pytest.mark.parametrize("name", list(IDENTITY_ENVS))
def test_wrong_action_earns_zero(name):
    env = IDENTITY_ENVS[name]()
    obs, _ = env.reset(seed=2)
    for _ in range(env.ep_length):
        obs, reward, _, _, _ = env.step(_wrong(obs, env.action_space))
        assert reward == 0.0


def test_identity_target_changes_every_step_and_dim_or_space_defaults():
    env = IdentityEnv(dim=10, ep_length=200)
    obs, _ = env.reset(seed=0)
    seen = {int(obs)}
    for _ in range(100):
        obs, *_ = env.step(0)
        seen.add(int(obs))
    assert seen == set(range(10))
    assert IdentityEnv().observation_space == spaces.Discrete(1)  # Stable-Baselines3's default: dim=1
    space = spaces.MultiBinary(3)
    assert IdentityEnv(space=space).action_space is IdentityEnv(space=space).observation_space
    with pytest.raises(EnvError, match="not both"):
        IdentityEnv(dim=3, space=space)


def test_discrete_identity_accepts_plain_int_and_length_one_array_actions():
    env = IdentityEnv(dim=7)
    obs, _ = env.reset(seed=4)
    _, reward, *_ = env.step(int(obs))
    assert reward == 1.0
    obs = env.state
    _, reward, *_ = env.step(np.array([obs]))
    assert reward == 1.0


def test_box_identity_counts_actions_within_eps():
    env = IdentityEnvBox(eps=0.05)
    assert env.observation_space == spaces.Box(-1.0, 1.0, (1,), np.float32)
    obs, _ = env.reset(seed=5)
    for offset, expected in ((0.04, 1.0), (-0.04, 1.0), (0.06, 0.0), (-0.06, 0.0)):
        target = obs
        obs, reward, *_ = env.step(target + np.float32(offset))
        assert reward == expected, (offset, target)


def test_multi_spaces_follow_stable_baselines3():
    assert IdentityEnvMultiDiscrete(dim=3).action_space == spaces.MultiDiscrete([3, 3])
    assert IdentityEnvMultiBinary(dim=4).action_space == spaces.MultiBinary(4)


@pytest.mark.parametrize("name", list(ALL_ENVS))
def test_same_seed_same_observations_different_seed_different(name):
    a, b = ALL_ENVS[name](), ALL_ENVS[name]()
    run_a, run_b = _rollout(a, 11, 45), _rollout(b, 11, 45)  # crosses two episode boundaries
    assert len(run_a) == len(run_b)
    assert all(_obs_equal(x, y) for x, y in zip(run_a, run_b, strict=True))
    run_c = _rollout(ALL_ENVS[name](), 12, 45)
    assert not all(_obs_equal(x, y) for x, y in zip(run_a, run_c, strict=True))
    # Re-seeding the same instance replays the run; seeding the action space does not move the targets.
    assert all(_obs_equal(x, y) for x, y in zip(run_a, _rollout(a, 11, 45), strict=True))


@pytest.mark.parametrize("name", ["quadrant", "quadrant_rgb_last"])
def test_quadrant_env_rewards_the_square_quadrant_only(name):
    env = IMAGE_ENVS[name]()
    obs, _ = env.reset(seed=6)
    quadrants = set()
    for _ in range(env.ep_length):
        quadrant = _quadrant(obs, env.channel_last)
        assert quadrant == env.quadrant
        quadrants.add(quadrant)
        obs, reward, *_ = env.step(quadrant)
        assert reward == 1.0
    assert quadrants == {0, 1, 2, 3}


def test_quadrant_env_wrong_answers_earn_zero():
    env = QuadrantImageEnv()
    obs, _ = env.reset(seed=7)
    for _ in range(50):
        obs, reward, *_ = env.step((_quadrant(obs, False) + 1) % 4)
        assert reward == 0.0


@pytest.mark.parametrize("name", ["quadrant", "quadrant_rgb_last", "dict", "dict_small", "dict_rgb_last"])
def test_image_has_one_square_wholly_in_one_quadrant_and_a_constant_pixel_sum(name):
    env = IMAGE_ENVS[name]()
    obs, _ = env.reset(seed=8)
    sums = set()
    for _ in range(60):
        image = obs["image"] if isinstance(obs, dict) else obs
        channel_last = env.channel_last
        size = image.shape[0] if channel_last else image.shape[1]
        rows, cols = _bright_pixels(image, channel_last)
        assert len(rows) == env.square_size**2
        assert rows.max() - rows.min() == cols.max() - cols.min() == env.square_size - 1
        half = size // 2
        assert (rows.min() >= half) == (rows.max() >= half) and (cols.min() >= half) == (cols.max() >= half)
        assert set(np.unique(image)) == {0, 255}
        channels = image[..., :] if channel_last else np.moveaxis(image, 0, -1)
        assert (channels == channels[..., :1]).all()  # white: the same in every channel
        sums.add(int(image.sum(dtype=np.int64)))
        obs, *_ = env.step(0)
    assert len(sums) == 1  # the pixel sum says nothing about the quadrant


@pytest.mark.parametrize("name", ["dict", "dict_small", "dict_rgb_last"])
def test_dict_env_rewards_quadrant_plus_rotation(name):
    env = IMAGE_ENVS[name]()
    obs, _ = env.reset(seed=9)
    pairs = set()
    for _ in range(env.ep_length):
        quadrant = _quadrant(obs["image"], env.channel_last)
        vec = obs["vec"]
        assert vec.sum() == 1.0 and set(np.unique(vec)) <= {0.0, 1.0}
        rotation = int(np.argmax(vec))
        pairs.add((quadrant, rotation))
        correct = (quadrant + rotation) % 4
        assert env.correct_action == correct
        obs, reward, *_ = env.step(correct)
        assert reward == 1.0
    # Both keys vary independently, so neither alone gives the answer.
    assert len({q for q, _ in pairs}) == 4 and len({r for _, r in pairs}) == 4
    assert len(pairs) > 8


def test_dict_env_one_key_alone_earns_about_a_quarter():
    env = DictObsEnv(ep_length=10_000)
    obs, _ = env.reset(seed=10)
    image_only = vec_only = 0
    steps = 2000
    for _ in range(steps):
        quadrant, rotation = _quadrant(obs["image"], False), int(np.argmax(obs["vec"]))
        image_only += int(quadrant == env.correct_action)
        vec_only += int(rotation == env.correct_action)
        obs, reward, *_ = env.step((quadrant + rotation + 1) % 4)
        assert reward == 0.0
    assert 0.18 < image_only / steps < 0.32 and 0.18 < vec_only / steps < 0.32


def test_default_image_sizes_fit_a_nature_cnn():
    def nature_convs(in_channels: int) -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, 32, 8, stride=4),
            torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 4, stride=2),
            torch.nn.ReLU(),
            torch.nn.Conv2d(64, 64, 3, stride=1),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
        )

    for env in (QuadrantImageEnv(), QuadrantImageEnv(channels=3, channel_last=True), DictObsEnv()):
        obs, _ = env.reset(seed=0)
        image = obs["image"] if isinstance(obs, dict) else obs
        x = torch.as_tensor(image, dtype=torch.float32)
        x = x.permute(2, 0, 1) if env.channel_last else x
        out = nature_convs(x.shape[0])(x.unsqueeze(0) / 255.0)
        assert out.shape == (1, 64)  # 36 -> 8 -> 3 -> 1


def test_render_mode_none_is_accepted_and_others_are_refused():
    for cls in (
        IdentityEnv,
        IdentityEnvBox,
        IdentityEnvMultiDiscrete,
        IdentityEnvMultiBinary,
        QuadrantImageEnv,
        DictObsEnv,
    ):
        env = cls(render_mode=None)
        assert env.render_mode is None
        env.reset(seed=0)
        assert env.render() is None
        with pytest.raises(EnvError, match="render_mode"):
            cls(render_mode="human")


def test_bad_arguments_are_refused():
    with pytest.raises(EnvError, match="ep_length"):
        IdentityEnv(dim=2, ep_length=0)
    with pytest.raises(EnvError, match="eps"):
        IdentityEnvBox(eps=-0.1)
    with pytest.raises(EnvError, match="size"):
        QuadrantImageEnv(size=6, square_size=4)
    with pytest.raises(EnvError, match="channels"):
        DictObsEnv(channels=0)


def test_envs_work_in_a_gymnasium_vector_env():
    vec = gym.vector.SyncVectorEnv([lambda: DictObsEnv(ep_length=5) for _ in range(3)])
    obs, _ = vec.reset(seed=0)
    assert obs["image"].shape == (3, 1, 36, 36) and obs["image"].dtype == np.uint8
    assert obs["vec"].shape == (3, 4) and obs["vec"].dtype == np.float32
    for _ in range(6):
        obs, rewards, terminated, truncated, _ = vec.step(vec.action_space.sample())
        assert not terminated.any()
    vec.close()


def test_dict_obs_env_pair_mode_answers_quadrant_and_rotation():
    env = DictObsEnv(pair=True)
    assert env.action_space == spaces.MultiDiscrete([4, 4])
    obs, _ = env.reset(seed=0)
    right = env.correct_action
    assert right[1] == int(np.argmax(obs["vec"]))
    _, reward, *_ = env.step(right)
    assert reward == 1.0
    wrong = right.copy()
    wrong[0] = (wrong[0] + 1) % 4
    env.reset(seed=0)
    assert env.step(wrong)[1] == 0.0
