"""The atari extra: ale-py's ids, the preprocessed factory (uint8 (4, 84, 84) frames), episodic
life that keeps the game going, ``info["game_over"]`` only at the real end of a game, whole-game
scores, make_env's Atari path, the "atari" preset fallback and the missing-extra message.

`make test` installs pgrl[atari], so these run in CI; without ale-py they skip (the guard is
pytest.importorskip), except the missing-extra test, which fakes a machine without it.
"""

from __future__ import annotations

import pickle
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrl.config import load_preset, preset_names
from pgrl.envs.atari import AtariFactory, is_atari_id
from pgrl.envs.make import EnvFactory, check_env_id, make_env
from pgrl.errors import EnvError

BREAKOUT = "ALE/Breakout-v5"


@pytest.fixture(scope="module")
def ale():
    return pytest.importorskip("ale_py")


def count_raw_rewards(env: gym.Env) -> list[float]:
    """Patch the ALE env under every wrapper to add up every emulator step's reward (no-ops and
    FIRE presses included); returns the one-element accumulator."""
    total = [0.0]
    base = env.unwrapped
    step = base.step

    def counting_step(action):
        out = step(action)
        total[0] += float(out[1])
        return out

    base.step = counting_step
    return total


def sticky(env: gym.Env) -> float:
    """The emulator's repeat_action_probability (sticky actions)."""
    return env.unwrapped.ale.getFloat("repeat_action_probability")


def play_until(env: gym.Env, rng: np.random.Generator, stop, max_steps: int = 5000):
    """Step with random actions until ``stop(terminated, truncated, info)``; (steps, rewards, last step)."""
    rewards = []
    for _ in range(max_steps):
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        rewards.append(float(reward))
        if stop(terminated, truncated, info):
            return rewards, (obs, reward, terminated, truncated, info)
    raise AssertionError(f"no stop within {max_steps} steps")


def test_ids_register_lazily_and_are_recognised(ale):
    check_env_id(BREAKOUT)  # registers ale-py's ids if nothing did yet
    assert is_atari_id(BREAKOUT) and is_atari_id("PongNoFrameskip-v4")
    assert not is_atari_id("CartPole-v1") and not is_atari_id("NoSuchGame-v5")


def test_factory_makes_uint8_frame_stacks_and_pickles(ale):
    factory = AtariFactory(BREAKOUT)
    clone = pickle.loads(pickle.dumps(factory))
    assert clone.env_id == BREAKOUT and clone.options() == factory.options()
    env = clone()
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and space.shape == (4, 84, 84)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.shape == (4, 84, 84) and info["game_over"] is False
    obs, _, _, _, info = env.step(0)
    assert space.contains(obs) and info["game_over"] is False
    assert env.unwrapped._frameskip == 1  # AtariPreprocessing skips (4 frames, the last two max-pooled)
    assert info["episode_frame_number"] > 0
    env.close()


def test_sticky_actions_follow_the_id_family(ale):
    v5, v4 = AtariFactory(BREAKOUT)(), AtariFactory("BreakoutNoFrameskip-v4")()
    assert sticky(v5) == pytest.approx(0.25) and sticky(v4) == 0.0
    v5.close(), v4.close()


def test_a_lost_life_ends_the_episode_but_not_the_game(ale):
    env = AtariFactory(BREAKOUT)()
    env.reset(seed=1)
    lives = env.unwrapped.ale.lives()
    rng = np.random.default_rng(1)
    rewards, (_, _, terminated, truncated, info) = play_until(env, rng, lambda te, tr, i: te or tr)
    assert terminated and not truncated and info["game_over"] is False
    assert info["lives"] == lives - 1
    frame = info["episode_frame_number"]
    _, info = env.reset()  # as the vector env's autoreset calls it: goes on with the next life
    assert info["game_over"] is False and env.unwrapped.ale.lives() == lives - 1
    assert info["episode_frame_number"] > frame  # the same game went on; a real reset restarts at the no-ops
    # Each following life ends with game_over False, until the last one, the only one marked game over.
    for remaining in range(lives - 2, -1, -1):
        _, (_, _, terminated, _, info) = play_until(env, rng, lambda te, tr, i: te or tr)
        assert terminated and info["lives"] == remaining and info["game_over"] is (remaining == 0)
        if remaining:
            env.reset()
    _, info = env.reset()  # the game is over: a real reset, all lives back
    assert env.unwrapped.ale.lives() == lives and info["episode_frame_number"] <= 31 * 4
    env.close()


def test_rewards_across_the_lives_of_a_game_add_up_to_its_score(ale):
    env = AtariFactory(BREAKOUT)()
    raw = count_raw_rewards(env)
    rng = np.random.default_rng(0)
    scores = []
    for game in range(6):  # a random player scores in most Breakout games; stop at the first that does
        env.reset(seed=game)
        raw[0] = 0.0
        total = 0.0
        while True:
            rewards, (_, _, _, _, info) = play_until(env, rng, lambda te, tr, i: te or tr)
            total += sum(rewards)
            if info["game_over"]:
                break
            env.reset()
        assert total == raw[0]  # nothing lost between lives, and nothing clipped: the game's score
        scores.append(total)
        if total > 1:
            break
    assert max(scores) > 1, f"random play scored {scores}"
    env.close()


def test_truncation_is_a_game_over(ale):
    env = AtariFactory(BREAKOUT, {"max_num_frames_per_episode": 200})()
    env.reset(seed=0)
    _, (_, _, _, truncated, info) = play_until(env, np.random.default_rng(0), lambda te, tr, i: tr, max_steps=100)
    assert truncated and info["game_over"] is True
    env.close()


def test_whole_games_without_episodic_life(ale):
    env = AtariFactory(BREAKOUT, episodic_life=False)()
    env.reset(seed=0)
    _, (_, _, terminated, _, info) = play_until(env, np.random.default_rng(0), lambda te, tr, i: te or tr)
    assert terminated and info["game_over"] is True and info["lives"] == 0
    env.close()


def test_fire_reset_only_where_the_game_has_fire(ale):
    def wrappers(env):
        names = []
        while isinstance(env, gym.Wrapper):
            names.append(type(env).__name__)
            env = env.env
        return names

    assert "FireReset" in wrappers(AtariFactory(BREAKOUT)())
    assert "FireReset" not in wrappers(AtariFactory(BREAKOUT, fire_reset=False)())
    assert "EpisodicLife" not in wrappers(AtariFactory(BREAKOUT, episodic_life=False)())


def test_make_env_builds_preprocessed_copies(ale):
    env = make_env(BREAKOUT, 2, seed=0)
    obs = env.reset(seed=0)
    # Only the shape for now: the vector-env adapter is changing to keep uint8 for image spaces.
    assert env.env_id == BREAKOUT and tuple(obs.shape) == (2, 4, 84, 84)
    assert env.single_observation_space.shape == (4, 84, 84)
    step = env.step(torch.zeros(2, dtype=torch.long))
    assert tuple(step.obs.shape) == (2, 4, 84, 84)
    env.close()
    wrapped = EnvFactory(BREAKOUT, {"repeat_action_probability": 0.0})()  # --env-kwargs keep the preprocessing
    assert wrapped.observation_space.shape == (4, 84, 84)
    assert sticky(wrapped) == 0.0


def test_make_env_async(ale):
    env = make_env(BREAKOUT, 2, seed=0, vectorization="async")
    try:
        assert tuple(env.reset(seed=0).shape) == (2, 4, 84, 84)
        assert tuple(env.step(torch.ones(2, dtype=torch.long)).obs.shape) == (2, 4, 84, 84)
    finally:
        env.close()


def test_bad_atari_options_are_one_sentence(ale):
    with pytest.raises(EnvError, match="frameskip"):
        make_env(BREAKOUT, 1, env_kwargs={"frameskip": 4})
    with pytest.raises(EnvError, match="not an Atari game"):
        AtariFactory("CartPole-v1")


def test_every_atari_id_falls_back_to_the_atari_preset(ale):
    for algo in ("ppo", "a2c"):
        for env_id in (BREAKOUT, "ALE/Pong-v5", "SpaceInvadersNoFrameskip-v4"):
            preset = load_preset(algo, env_id)
            assert preset["clip_reward"] == 1.0 and preset["policy"] == "CnnPolicy"
            assert preset_names(algo, env_id) == (["default", "lstm"] if algo == "ppo" else ["default"])
    assert load_preset("ppo", BREAKOUT)["n_steps"] == 128 and load_preset("a2c", BREAKOUT)["n_envs"] == 16
    assert "clip_reward" not in load_preset("ppo", "CartPole-v1")


def test_missing_extra_names_the_install(monkeypatch):
    # A machine without ale-py: importing it fails and none of its ids are registered.
    monkeypatch.setitem(sys.modules, "ale_py", None)
    monkeypatch.setattr(gym, "registry", {k: v for k, v in gym.registry.items()
                                          if not str(v.entry_point).startswith("ale_py")})
    for env_id in (BREAKOUT, "PongNoFrameskip-v4"):
        with pytest.raises(EnvError, match=r"pip install 'pgrl\[atari\]'"):
            make_env(env_id, 1)


def test_benchmark_names_runs_and_resumes_from_checkpoints(tmp_path):
    import argparse

    from benchmarks import atari as bench

    assert bench.game_name("ALE/Breakout-v5") == "Breakout" and bench.game_name("PongNoFrameskip-v4") == "Pong"
    assert bench.run_slug("ALE/Breakout-v5") == "breakout"
    assert bench.run_slug("PongNoFrameskip-v4") == "pongnoframeskip-v4"
    args = argparse.Namespace(seed=3, out=tmp_path, checkpoint_every=None, eval_episodes=0, device="cpu",
                              set=["n_steps=32"])
    run_dir = tmp_path / "breakout"
    fresh = bench.train_command(BREAKOUT, run_dir, args, 10_000_000)
    assert fresh[fresh.index("train") + 1:][:2] == ["ppo", BREAKOUT] and "--resume" not in fresh
    assert fresh[fresh.index("--checkpoint-every") + 1] == "200000" and "n_steps=32" in fresh
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "ckpt_000000001024.safetensors").write_bytes(b"")
    resumed = bench.train_command(BREAKOUT, run_dir, args, 10_000_000)
    assert resumed[resumed.index("--resume") + 1] == str(run_dir) and "ppo" not in resumed
    assert not bench.is_finished(run_dir, 2048)
    (run_dir / "summary.json").write_text('{"num_timesteps": 2048, "interrupted": false}')
    assert bench.is_finished(run_dir, 2048) and not bench.is_finished(run_dir, 4096)


def test_a_users_next_step_vector_env_keeps_the_game_going(ale):
    # pgrl serves NEXT_STEP vector envs with masked partial resets (reset(options={})): still a lost life.
    from pgrl.envs.make import to_vec_env

    vec = gym.vector.SyncVectorEnv([AtariFactory(BREAKOUT)])
    env = to_vec_env(vec, seed=0)
    ale_ = vec.envs[0].unwrapped.ale
    lives = ale_.lives()
    rng = np.random.default_rng(0)
    for _ in range(2000):
        step = env.step(torch.as_tensor(rng.integers(4, size=1)))
        if bool(step.terminated[0]):
            break
    assert bool(step.terminated[0]) and ale_.lives() == lives - 1
    env.close()


def test_ppo_on_breakout_trains_saves_loads_predicts_and_evaluates(ale, tmp_path):
    import pgrl

    torch.set_num_threads(2)
    model = pgrl.PPO(None, BREAKOUT, seed=0, n_envs=2, n_steps=32, batch_size=64, n_epochs=1)
    assert model.config.policy == "CnnPolicy" and model.config.clip_reward == 1.0  # rl-zoo's Atari preset
    model.learn(64)
    assert model.num_timesteps == 64
    assert model.collector()._storage.obs.dtype == torch.uint8
    loaded = pgrl.PPO.load(model.save(tmp_path / "breakout"))
    obs, _ = AtariFactory(BREAKOUT)().reset(seed=0)
    action, _ = loaded.predict(obs, deterministic=True)
    assert np.shape(action) == () and 0 <= int(action) < 4
    assert np.array_equal(loaded.predict(np.stack([obs, obs]))[0], model.predict(np.stack([obs, obs]))[0])
    returns, lengths = pgrl.evaluate_policy(loaded, n_eval_episodes=1, return_episode_rewards=True)
    assert len(returns) == 1 and lengths[0] > 0 and returns[0] >= 0


def test_reported_training_returns_are_whole_games_not_lives(ale):
    """Training with episodic life: the learner sees a terminal step per lost life (5 per game
    of Breakout), while the run's episode returns and lengths count whole games."""
    import pgrl

    torch.set_num_threads(2)
    model = pgrl.PPO(None, BREAKOUT, seed=0, n_envs=2, n_steps=64, batch_size=128, n_epochs=1)
    collector = model.collector()
    lives_lost, returns, lengths = 0, [], []
    for _ in range(30):
        rollout = collector.collect(64)
        lives_lost += int(rollout.terminated.sum())
        returns += rollout.episode_returns
        lengths += rollout.episode_lengths
        if len(returns) >= 2:
            break
    assert len(returns) >= 2, "no whole game ended"
    assert lives_lost >= 5 * len(returns)  # every game ended after its five lives
    assert all(length > 5 for length in lengths)
    assert float(rollout.rewards.abs().max()) <= 1.0  # the learner's rewards are clipped, the returns are not
