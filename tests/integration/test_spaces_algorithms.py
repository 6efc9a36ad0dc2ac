"""Every algorithm on every action and observation space: trains, saves, loads, predicts in SB3's shapes.

Short runs (a smoke test per algorithm and space); the identity-task learning tests are in
tests/learning/test_identity.py.  Also: a CnnPolicy holds Conv2d layers and stores uint8
frames, Dict observations are stored as a dict of tensors, and a model refuses an env whose
spaces are not its own.
"""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import pytest
import torch
from algo_configs import ALGOS, SMALL

import pgrl
from pgrl.envs.identity import (
    DictObsEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    QuadrantImageEnv,
)
from pgrl.errors import CheckpointError, EnvError, PGRLError


class BoxMatrixEnv(IdentityEnv):
    """The identity task on a 2x3 Box: actions arrive in the space's own shape."""

    def __init__(self):
        super().__init__(space=gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32), ep_length=20)

    def step(self, action):
        assert np.shape(action) == (2, 3), np.shape(action)
        obs, _, terminated, truncated, info = super().step(action)
        return obs, -float(np.abs(np.asarray(action) - self.state).mean()), terminated, truncated, info


# factories that pickle (A3C's worker processes make their own envs from them)
SPACES = {
    "multidiscrete": (partial(IdentityEnvMultiDiscrete, 3, ep_length=20), "MlpPolicy"),
    "multibinary": (partial(IdentityEnvMultiBinary, 3, ep_length=20), "MlpPolicy"),
    "box-2d": (BoxMatrixEnv, "MlpPolicy"),
    "dict-obs": (partial(DictObsEnv, ep_length=20), "MultiInputPolicy"),
    "image-obs": (partial(QuadrantImageEnv, channel_last=True, channels=3, ep_length=20), "CnnPolicy"),
}


def _model(algo: str, case: str, **extra):
    factory, policy = SPACES[case]
    cls = pgrl.Algorithm.registry[algo]
    return cls(policy, factory, n_envs=2, seed=0, **SMALL[algo], **extra)


@pytest.mark.parametrize("case", list(SPACES))
@pytest.mark.parametrize("algo", ALGOS)
def test_every_algorithm_trains_saves_loads_and_predicts_on_every_space(algo, case, tmp_path):
    torch.set_num_threads(1)
    model = _model(algo, case)
    model.learn(160)
    assert model.num_timesteps >= 160
    env = SPACES[case][0]()
    obs, _ = env.reset(seed=3)
    action, state = model.predict(obs, deterministic=True)
    assert state is None
    assert np.shape(action) == env.action_space.shape and env.action_space.contains(
        np.asarray(action, dtype=env.action_space.dtype))
    assert np.asarray(action).dtype == env.action_space.dtype
    batch = {k: np.stack([v, v, v]) for k, v in obs.items()} if isinstance(obs, dict) else np.stack([obs] * 3)
    actions, _ = model.predict(batch, deterministic=True)
    assert np.shape(actions) == (3, *env.action_space.shape)
    path = model.save(tmp_path / "model")
    loaded = type(model).load(path)
    assert loaded.config.policy == model.config.policy
    assert np.array_equal(loaded.predict(batch, deterministic=True)[0], actions)
    mean, _ = pgrl.evaluate_policy(loaded, env, n_eval_episodes=2)
    assert np.isfinite(mean)


def test_cnn_policy_has_conv_layers_and_stores_uint8_frames():
    model = _model("ppo", "image-obs")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.policy.modules()) == 3
    model.learn(64)
    storage = model.collector()._storage
    assert storage.obs.dtype == torch.uint8 and storage.obs.shape == (32, 2, 36, 36, 3)
    assert storage.next_obs is None  # compact: obs[t + 1], last_obs and the final observations stand in


def test_compact_storage_gives_the_next_observations_and_values_of_full_storage():
    from pgrl.algos.common import rollout_values

    model = pgrl.PPO("CnnPolicy", lambda: QuadrantImageEnv(ep_length=5), n_envs=3, n_steps=16, batch_size=48,
                     seed=0)
    seen = []
    rollout = model.collector().collect(16, on_step=lambda step: seen.append(step.final_obs.clone()) or True)
    assert rollout.next_obs is None and len(rollout.finals) == 3  # steps 4, 9 and 14 end every env's episode
    full = rollout.next_observations()
    assert torch.equal(full, torch.stack(seen))
    values, next_values = rollout_values(model.policy, rollout)
    with torch.no_grad():
        torch.testing.assert_close(next_values, model.policy.value(full.reshape(48, *full.shape[2:])).reshape(16, 3))
        torch.testing.assert_close(values, model.policy.value(rollout.obs.reshape(48, *full.shape[2:])).reshape(16, 3))


def test_eight_envs_of_atari_sized_frames_stay_under_30_mb():
    """8 envs x 128 steps of 4x84x84 frames, as the Atari presets collect them."""

    class Frames(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
        action_space = gym.spaces.Discrete(4)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    model = pgrl.PPO("CnnPolicy", Frames, n_envs=8, n_steps=128, batch_size=256, n_epochs=1, seed=0)
    rollout = model.collector()._storage_for(128)
    assert rollout.obs.dtype == torch.uint8 and rollout.next_obs is None
    stored = sum(t.numel() * t.element_size() for t in vars(rollout).values() if isinstance(t, torch.Tensor))
    assert stored < 30e6, stored


def test_dict_observations_are_stored_as_a_dict_of_tensors():
    model = _model("a2c", "dict-obs")
    model.learn(32)
    obs = model.collector()._storage.obs
    assert set(obs) == {"image", "vec"}
    assert obs["image"].dtype == torch.uint8 and obs["vec"].dtype == torch.float32


def test_normalize_with_dict_observations_normalizes_the_vector_keys_only():
    model = _model("ppo", "dict-obs", normalize=True)
    model.learn(64)
    assert set(model.obs_normalizer.normalizers) == {"vec"}
    loaded_path = model.save("/tmp/pgrl-dict-normalize")
    loaded = pgrl.PPO.load(loaded_path)
    assert torch.equal(loaded.obs_normalizer.normalizers["vec"].stats.mean,
                       model.obs_normalizer.normalizers["vec"].stats.mean)


def test_a_model_refuses_an_env_with_other_spaces(tmp_path):
    model = pgrl.PPO("MlpPolicy", IdentityEnv(4), n_steps=16, batch_size=16, seed=0)
    path = model.save(tmp_path / "m")
    with pytest.raises(PGRLError) as info:
        pgrl.PPO.load(path, env=IdentityEnvMultiDiscrete(4))
    assert isinstance(info.value, CheckpointError | EnvError)
    assert "space" in str(info.value)
    with pytest.raises(EnvError, match="space"):
        model.set_env(IdentityEnvBox())


class WrongReset(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, shape=(4,), dtype=np.float32):
        self.shape, self.dtype = shape, dtype

    def reset(self, *, seed=None, options=None):
        return np.zeros(self.shape, dtype=self.dtype), {}

    def step(self, action):
        return np.zeros(self.shape, dtype=self.dtype), 0.0, False, False, {}


@pytest.mark.parametrize("shape,dtype,words", [((4,), np.float32, "shape"), ((3,), np.str_, "dtype")])
def test_an_env_whose_reset_breaks_its_space_gets_one_sentence(shape, dtype, words):
    with pytest.raises(EnvError, match=words):
        pgrl.PPO("MlpPolicy", WrongReset(shape, dtype), n_steps=16, batch_size=16).learn(32)


def test_the_cli_says_unsupported_spaces_in_one_line(tmp_path, capsys):
    from pgrl.cli import main

    gym.register("pgrl-test/TupleObs-v0", entry_point=f"{__name__}:TupleObsEnv")
    code = main(["train", "ppo", "pgrl-test/TupleObs-v0", "--total-timesteps", "64", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Tuple" in err and "FlattenObservation" in err and "Traceback" not in err


class TupleObsEnv(gym.Env):
    observation_space = gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Discrete(3)])
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return (0, 0), {}

    def step(self, action):
        return (0, 0), 0.0, True, False, {}
