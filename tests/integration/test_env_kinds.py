"""Every kind of env argument gives the same environment as the id path.

An id, a gym.Env instance, a factory, Gymnasium's Sync/Async VectorEnv in each autoreset mode
(NEXT_STEP is Gymnasium's default: its reset step must never reach pgrl) and make_vec_env give
the same observations, rewards, terminated/truncated flags and final observations for the same
seed and actions; algorithms train on each, and a user's own unregistered env class trains,
saves, loads and evaluates.
"""

from __future__ import annotations

import inspect
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgrl
from pgrl.envs.make import make_env, to_vec_env
from pgrl.errors import ConfigError, EnvError

SEED = 11
STEPS = 400  # random CartPole actions end an episode every ~20 steps: many resets


def _cartpole():
    return gym.make("CartPole-v1", max_episode_steps=30)  # short limit: truncations too


def _trajectory(vec, actions):
    obs = [vec.reset(seed=SEED)]
    steps = []
    for a in actions:
        step = vec.step(a)
        steps.append(step)
        obs.append(step.obs)
    vec.close()
    return obs, steps


def _assert_same(reference, other, what):
    (obs_a, steps_a), (obs_b, steps_b) = reference, other
    for t, (a, b) in enumerate(zip(obs_a, obs_b, strict=True)):
        assert torch.equal(a, b), f"{what}: observation {t} differs"
    for t, (a, b) in enumerate(zip(steps_a, steps_b, strict=True)):
        for field in ("rewards", "terminated", "truncated", "final_obs"):
            assert torch.equal(getattr(a, field), getattr(b, field)), f"{what}: {field} of step {t} differs"


@pytest.fixture(scope="module")
def actions_for():
    rng = np.random.default_rng(0)
    return lambda n: [torch.as_tensor(rng.integers(0, 2, n)) for _ in range(STEPS)]


def _registered_short_cartpole():
    if "pgrl-test/ShortCartPole-v1" not in gym.registry:
        gym.register("pgrl-test/ShortCartPole-v1", entry_point="gymnasium.envs.classic_control:CartPoleEnv",
                     max_episode_steps=30)
    return "pgrl-test/ShortCartPole-v1"


@pytest.mark.parametrize("copies", [1, 3])
def test_every_env_kind_steps_like_the_id(copies, actions_for):
    env_id = _registered_short_cartpole()
    actions = actions_for(copies)
    reference = _trajectory(make_env(env_id, copies, backend="gymnasium"), actions)
    assert any(bool(s.terminated.any()) for s in reference[1]) and any(bool(s.truncated.any()) for s in reference[1])
    kinds = {
        "factory": lambda: to_vec_env(_cartpole, copies),
        "make_vec_env": lambda: pgrl.make_vec_env(_cartpole, copies),
        "make_vec_env async": lambda: pgrl.make_vec_env(_cartpole, copies, vec_env_cls="async"),
    }
    for mode in gym.vector.AutoresetMode:
        kinds[f"SyncVectorEnv {mode.value}"] = lambda mode=mode: to_vec_env(
            gym.vector.SyncVectorEnv([_cartpole] * copies, autoreset_mode=mode))
        kinds[f"AsyncVectorEnv {mode.value}"] = lambda mode=mode: to_vec_env(
            gym.vector.AsyncVectorEnv([_cartpole] * copies, autoreset_mode=mode))
    if copies == 1:
        kinds["instance"] = lambda: to_vec_env(_cartpole())
    for what, build in kinds.items():
        _assert_same(reference, _trajectory(build(), actions), what)


class Corridor(gym.Env):
    """A user's own env, never registered: walk right (action 1) to the end of a corridor."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 5):
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.pos = max(0, self.pos + (1 if int(action) == 1 else -1))
        done = self.pos >= self.length
        return np.array([self.pos / self.length], np.float32), (1.0 if done else -0.1), done, False, {}


def test_a_users_own_env_trains_saves_loads_and_evaluates(tmp_path):
    env = gym.wrappers.TimeLimit(Corridor(), max_episode_steps=50)
    model = pgrl.PPO("MlpPolicy", env, seed=0, device="cpu", n_steps=128, batch_size=64, n_epochs=4)
    assert model.env_id == "Corridor" and model.config.n_envs == 1
    model.learn(4096)
    returns, lengths = pgrl.evaluate_policy(model, Corridor(), n_eval_episodes=4, return_episode_rewards=True)
    assert len(returns) == 4 and all(n == 5 for n in lengths), (returns, lengths)  # learned to walk right
    with pytest.raises(EnvError, match="pass the env to evaluate on"):
        pgrl.evaluate_policy(model)
    path = model.save(tmp_path / "corridor")
    loaded = pgrl.PPO.load(path)
    obs = np.array([[0.0], [0.4]], np.float32)
    assert np.array_equal(loaded.predict(obs)[0], model.predict(obs)[0])
    loaded.set_env(lambda: gym.wrappers.TimeLimit(Corridor(), 50))
    loaded.learn(256)  # trains on with the new env
    with pytest.raises(EnvError, match="spaces"):
        loaded.set_env(gym.make("CartPole-v1"))


def test_instance_factory_and_vector_env_train_the_same_model():
    def train(env, **n_envs):
        torch.set_num_threads(1)
        model = pgrl.A2C("MlpPolicy", env, seed=3, device="cpu", n_steps=8, **n_envs)
        model.learn(800)
        return torch.cat([p.detach().flatten() for p in model.policy.parameters()])

    instance = train(_cartpole())
    factory = train(lambda: _cartpole(), n_envs=1)
    vector = train(gym.vector.SyncVectorEnv([_cartpole]))  # NEXT_STEP, Gymnasium's default
    assert torch.equal(instance, factory) and torch.equal(instance, vector)


def test_evaluate_policy_uses_the_env_it_is_given():
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu")
    plain = pgrl.evaluate_policy(model, _cartpole(), 3, return_episode_rewards=True)[0]
    doubled = pgrl.evaluate_policy(model, gym.wrappers.TransformReward(_cartpole(), lambda r: 2 * r), 3,
                                   return_episode_rewards=True)[0]
    assert doubled == [2 * r for r in plain]


def test_bad_env_arguments_are_one_sentence():
    with pytest.raises(EnvError, match="not int"):
        pgrl.PPO("MlpPolicy", 3)
    with pytest.raises(ConfigError, match="n_envs=4 but the given env has 1 copy"):
        pgrl.PPO("MlpPolicy", _cartpole(), n_envs=4)
    own_vector = gym.make_vec("CartPole-v1", 2, vectorization_mode="vector_entry_point")
    with pytest.raises(EnvError, match="cannot reset some of its copies"):
        pgrl.PPO("MlpPolicy", own_vector)
    with pytest.raises(EnvError, match="returned int, not a gymnasium.Env"):
        pgrl.A2C("MlpPolicy", lambda: 3)
    with pytest.raises(EnvError, match="vec_env_cls"):
        pgrl.make_vec_env("CartPole-v1", 2, vec_env_cls="threads")


def test_a3c_workers_make_envs_from_a_factory_not_an_instance():
    with pytest.raises(ConfigError, match="workers make their own envs"):
        pgrl.A3C("MlpPolicy", _cartpole(), n_workers=1).learn(100)
    model = pgrl.A3C("MlpPolicy", _cartpole, n_workers=2, n_envs=1)
    model.learn(400)
    assert model.num_timesteps >= 400 and model.env_id == "CartPole-v1"


PACKAGE = '''
import gymnasium as gym
from test_env_kinds_corridor import Corridor

gym.register("PgrlTestPkg/Corridor-v0", entry_point=Corridor, max_episode_steps=50)
'''


def test_cli_env_options_train_resume_and_eval(tmp_path, monkeypatch, capsys):
    """--gym-package registers a user's env, --env-kwargs and --env-wrapper reach every copy, and
    config.json keeps them for --resume and pgrl eval."""
    from pgrl.cli import main

    (tmp_path / "pgrl_test_pkg.py").write_text(PACKAGE)
    (tmp_path / "test_env_kinds_corridor.py").write_text(
        "import gymnasium as gym\nimport numpy as np\n\n" + inspect.getsource(Corridor))
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    flags = ["--gym-package", "pgrl_test_pkg", "--env-kwargs", "length=3",
             "--env-wrapper", "gymnasium.wrappers:RecordEpisodeStatistics"]
    code = main(["train", "ppo", "PgrlTestPkg/Corridor-v0", *flags, "--total-timesteps", "4096", "--set", "n_envs=2",
                 "--set", "n_steps=128", "--checkpoint-every", "2048", "--no-progress", "--out", str(run),
                 "--eval-episodes", "0"])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((run / "config.json").read_text())
    assert saved["env_kwargs"] == {"length": 3} and saved["gym_packages"] == ["pgrl_test_pkg"]
    with pytest.warns(UserWarning, match="runs on Gymnasium"):
        assert main(["train", "--resume", str(run), "--total-timesteps", "6144", "--no-progress",
                     "--eval-episodes", "0"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "greedy return over 3 episodes: 0.8" in out, out  # length 3: two -0.1 steps, then +1
    for bad, message in [(["--gym-package", "no_such_module_pgrl"], "--gym-package no_such_module_pgrl could not"),
                         (["--env-wrapper", "nocolon"], "--env-wrapper takes module:Class"),
                         (["--env-kwargs", "oops"], "--env-kwargs expects key=value")]:
        assert main(["train", "ppo", "CartPole-v1", *bad, "--out", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
