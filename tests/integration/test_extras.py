"""The mujoco and box2d extras: PPO trains, saves, loads, predicts and evaluates on Hopper-v5 and
LunarLander-v3; continuous-control options (normalization saved with the model, reward clipping,
gSDE from the top-level key, time-limit bootstrapping) on MuJoCo; the control benchmark's plumbing.

`make test` installs both extras, so a missing one FAILS here (it never skips): CI must notice.
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

import pgrl
from pgrl.config import load_preset


def require(module: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"the pgrl[{extra}] extra is not installed ({exc}); run `make install` or "
                    f"pip install -e '.[{extra}]'")


@pytest.fixture(scope="module")
def mujoco_ready():
    require("mujoco", "mujoco")
    require("imageio", "mujoco")  # Gymnasium's MuJoCo envs import it


@pytest.fixture(scope="module")
def box2d_ready():
    require("Box2D", "box2d")


def check_round_trip(model, env_id: str, tmp_path, n_eval: int = 2):
    obs_shape = model.observation_space.shape
    path = model.save(tmp_path / "model")
    loaded = type(model).load(path, device="cpu")
    assert loaded.env_id == env_id and loaded.num_timesteps == model.num_timesteps
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(5, *obs_shape)).astype(np.float32)
    actions, _ = loaded.predict(batch, deterministic=True)
    expected, _ = model.predict(batch, deterministic=True)
    np.testing.assert_array_equal(actions, expected)  # weights and normalizer statistics both came back
    single, _ = loaded.predict(batch[0], deterministic=True)
    space = model.action_space
    assert actions.shape == (5, *space.shape) and single.shape == tuple(space.shape)
    returns, lengths = pgrl.evaluate_policy(loaded, env_id, n_eval, backend="gymnasium", return_episode_rewards=True)
    assert len(returns) == n_eval and all(np.isfinite(returns)) and all(n >= 1 for n in lengths)
    return loaded


def test_ppo_on_hopper_trains_saves_loads_and_evaluates(mujoco_ready, tmp_path):
    # The Hopper preset (CleanRL's set: normalized obs and rewards, value clipping) on a short budget.
    model = pgrl.PPO("MlpPolicy", "Hopper-v5", seed=0, device="cpu", n_steps=256, batch_size=128, n_epochs=2)
    assert model.config.normalize and model.config.normalize_reward
    assert model.policy.continuous and tuple(model.action_space.shape) == (3,)
    model.learn(2048)
    assert model.num_timesteps == 2048 and model.num_episodes > 0
    loaded = check_round_trip(model, "Hopper-v5", tmp_path)
    stats = model.obs_normalizer.stats
    assert float(stats.count) > 2048  # every training observation went into the statistics
    for key in ("mean", "var", "count"):
        assert torch.equal(getattr(loaded.obs_normalizer.stats, key), getattr(stats, key)), key


def test_ppo_on_lunar_lander_trains_saves_loads_and_evaluates(box2d_ready, tmp_path):
    model = pgrl.PPO("MlpPolicy", "LunarLander-v3", seed=0, device="cpu", n_envs=8, n_steps=128, n_epochs=2,
                     batch_size=256)
    assert model.config.gamma == 0.999 and model.config.ent_coef == 0.01  # the preset (rl-zoo's)
    model.learn(4096)
    assert model.num_timesteps == 4096
    check_round_trip(model, "LunarLander-v3", tmp_path)


def test_lunar_lander_continuous_id_and_preset(box2d_ready):
    model = pgrl.PPO("MlpPolicy", "LunarLanderContinuous-v3", seed=0, device="cpu", n_envs=2, n_steps=32,
                     batch_size=64, n_epochs=1)
    assert model.policy.continuous and tuple(model.action_space.shape) == (2,)
    model.learn(64)


@pytest.mark.parametrize("algo", ["ppo", "a2c", "trpo"])
@pytest.mark.parametrize(
    "env_id",
    ["Pendulum-v1", "MountainCarContinuous-v0", "LunarLander-v3", "LunarLanderContinuous-v3",
     "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "InvertedPendulum-v5"],
)
def test_every_control_preset_builds(mujoco_ready, box2d_ready, algo, env_id):
    preset = load_preset(algo, env_id)
    assert preset.get("n_timesteps"), f"{algo} {env_id} has no preset budget"
    model = pgrl.ALGORITHMS[algo]("MlpPolicy", env_id, seed=0, device="cpu")
    assert model.policy.use_sde == bool(preset.get("use_sde", False))  # top-level use_sde reaches the policy
    model.env.close()


def test_time_limit_truncation_bootstraps_from_the_final_mujoco_observation(mujoco_ready):
    model = pgrl.PPO("MlpPolicy", "InvertedPendulum-v5", seed=0, device="cpu", n_envs=2, n_steps=8, batch_size=16,
                     normalize=False, env_kwargs={"max_episode_steps": 3}, env_backend="gymnasium")
    rollout = model.collect()
    # InvertedPendulum does not fall within 3 small steps, so every 3rd step is a time-limit truncation
    assert rollout.truncated[2].all() and rollout.truncated[5].all() and not rollout.terminated.any()
    # next_obs of a truncated step is the episode's last observation, not the reset observation after it
    assert not torch.equal(rollout.next_obs[2], rollout.obs[3])
    assert torch.equal(rollout.next_obs[1], rollout.obs[2])
    from pgrl.returns import gae

    values, next_values = torch.zeros(8, 2), torch.ones(8, 2)
    advantages = gae(rollout.rewards, values, next_values, rollout.terminated, rollout.truncated, 0.99, 1.0)
    # a truncated step's advantage is r + gamma * V(final obs): the bootstrap is kept
    torch.testing.assert_close(advantages[2], rollout.rewards[2] + 0.99)


def test_clip_reward_clips_what_the_learner_sees_not_the_episode_return():
    model = pgrl.PPO("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", n_envs=2, n_steps=256, batch_size=64,
                     normalize_reward=False, clip_reward=0.5)
    rollout = model.collect()
    assert float(rollout.rewards.min()) >= -0.5 and float(rollout.rewards.min()) == -0.5
    assert min(rollout.episode_returns) < -0.5 * 200  # Pendulum's episode returns are the env's own
    scaled = pgrl.PPO("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", n_envs=2, n_steps=64, batch_size=64,
                      normalize_reward=True, clip_reward=0.01)
    assert float(scaled.collect().rewards.abs().max()) <= 0.01 + 1e-6
    with pytest.raises(pgrl.errors.ConfigError, match="clip_reward"):
        pgrl.PPO("MlpPolicy", "Pendulum-v1", clip_reward=-1.0)


def test_control_benchmark_writes_results_and_regenerates_the_readme(mujoco_ready, tmp_path):
    from benchmarks import control

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{control.MARK_BEGIN}\nold\n{control.MARK_END}\nafter\n")
    out = tmp_path / "out"
    control.main(["--only", "Pendulum-v1", "--algos", "a2c", "--seeds", "0", "--steps", "512",
                  "--out", str(out), "--readme", str(readme)])
    result = json.loads((out / "a2c_Pendulum-v1_s0_512.json").read_text())
    assert result["steps"] >= 512 and result["eval_episodes"] == 20 and len(result["eval_returns"]) == 20
    text = readme.read_text()
    assert "old" not in text and text.endswith(f"{control.MARK_END}\nafter\n")
    assert "| ppo | default | HalfCheetah-v5 | 1,000,000 | 0/3 | seed 0, 1, 2 not run yet" in text  # not run: says so
    # a table-budget result appears with its verdict, seeds so far and the target
    (out / "ppo_Hopper-v5_s0_1000000.json").write_text(json.dumps(
        {**result, "algo": "ppo", "env_id": "Hopper-v5", "preset": "default", "budget": 1_000_000, "steps": 1_000_000,
         "eval_mean": 2600.0, "eval_episodes": 10}))
    control.main(["--readme-only", "--out", str(out), "--readme", str(readme)])
    # a non-default preset's runs have their own files (ALGO_ENV_PRESET_sSEED_STEPS.json) and row
    (out / "ppo_Hopper-v5_zoo_s1_1000000.json").write_text(json.dumps(
        {**result, "algo": "ppo", "env_id": "Hopper-v5", "preset": "zoo", "seed": 1, "budget": 1_000_000,
         "steps": 1_000_000, "eval_mean": 985.0, "eval_episodes": 10}))
    control.main(["--readme-only", "--out", str(out), "--readme", str(readme)])
    lines = readme.read_text().splitlines()
    row = next(line for line in lines if line.startswith("| ppo | default | Hopper-v5"))
    assert "| 1/3 | 2600 (10 episodes each) |" in row and "met so far" in row and "≥ 2500" in row
    zoo = next(line for line in lines if line.startswith("| ppo | zoo | Hopper-v5"))
    assert "| 1/3 | 985 (10 episodes each) |" in zoo and "**missed**: learns to stand" in zoo and "so far" in zoo
    assert "seed 0, 2 not run yet (`--only Hopper-v5 --presets zoo` runs them)" in zoo


def test_a_missing_extra_is_one_sentence_naming_the_extra():
    import gymnasium as gym

    env_id = "pgrl-test/MissingMujocoDependency-v0"
    if env_id not in gym.registry:  # an entry point in Gymnasium's MuJoCo family whose import fails
        gym.register(env_id, entry_point="gymnasium.envs.mujoco.pgrl_missing_module:Env", max_episode_steps=5)
    with pytest.raises(pgrl.errors.EnvError, match=r"needs an optional dependency .*pip install 'pgrl\[mujoco\]'"):
        pgrl.PPO("MlpPolicy", env_id)


def test_control_benchmark_sb3_ratio_pairs_and_row(mujoco_ready, tmp_path):
    from benchmarks import control

    result = control.run_ratio(seed=0, steps=512, out=tmp_path, repeats=1)  # SB3's side included
    assert result["pgrl_steps_per_second"] > 0 and result["sb3_steps_per_second"] > 0 and len(result["pairs"]) == 1
    pairs = [{"pgrl_steps_per_second": 600.0, "sb3_steps_per_second": s, "ratio": 600.0 / s} for s in (200, 300, 400)]
    (tmp_path / "ratio_HalfCheetah-v5_s0_10240.json").write_text(json.dumps(
        {**result, "steps": 10240, "repeats": 3, "pairs": pairs, **pairs[1]}))
    row = next(line for line in control.render(tmp_path, [0, 1, 2]).splitlines() if "median of 3" in line)
    assert "| 600 | 300 | 2.00× (pairs: 3.00, 2.00, 1.50) | met |" in row
