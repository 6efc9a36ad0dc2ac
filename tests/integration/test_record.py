"""pgrl record / pgrl eval --record: the video holds the evaluated episodes, frame for frame."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from pgrl import PPO
from pgrl.cli import main
from pgrl.evaluation import evaluate_policy
from pgrl.record import record_run
from pgrl.runs import load_run_model, run_env, train_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Short PPO runs (one update) on CartPole-v1 and Pendulum-v1: trained run folders, episodes of unequal lengths."""
    root = tmp_path_factory.mktemp("record")
    made = {}
    # Pendulum's episodes are cut to 60 steps with an env kwarg, which the recorded env must keep
    for env_id, env_kwargs in (("CartPole-v1", None), ("Pendulum-v1", {"max_episode_steps": 60})):
        made[env_id], _, _ = train_run("ppo", env_id, seed=1, total_timesteps=1024, out=root / env_id,
                                       progress_bar=False, eval_episodes=0, overrides=["n_steps=256", "n_envs=4"],
                                       env_kwargs=env_kwargs)
    return made


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_the_gif_has_a_frame_per_step_and_reset_and_evals_returns(runs, env_id, tmp_path):
    run, episodes, seed = runs[env_id], 3, 123
    recording = record_run(run, episodes, tmp_path / "clip.gif", seed=seed, width=96)
    model = load_run_model(run)
    returns, lengths = evaluate_policy(model, run_env(run, model), episodes, seed=seed, backend="gymnasium",
                                       return_episode_rewards=True)
    assert recording.returns == returns and recording.lengths == lengths
    with Image.open(recording.path) as gif:
        assert gif.n_frames == sum(lengths) + episodes == sum(recording.frames)
        assert gif.width >= 96  # the caption may widen the canvas
    if env_id == "CartPole-v1":
        assert len(set(lengths)) > 1, "the episodes should differ; the test would not tell them apart"
        other = record_run(run, 1, tmp_path / "other.gif", seed=seed + 1, width=96)
        assert other.lengths[0] != lengths[0]  # the seed reaches the env
    else:
        assert lengths == [60] * episodes


def eval_line(out: str) -> str:
    match = re.search(r"return over \d+ episodes: \S+ ± \S+", out)
    assert match, out
    return match.group(0)


def test_record_and_eval_record_print_what_pgrl_eval_prints(runs, capsys, tmp_path):
    run = str(runs["CartPole-v1"])
    assert main(["eval", run, "--episodes", "4", "--seed", "9", "--env-backend", "gymnasium"]) == 0
    plain = eval_line(capsys.readouterr().out)
    out_file = tmp_path / "eval.gif"
    assert main(["eval", run, "--episodes", "4", "--seed", "9", "--record", "--record-episodes", "2",
                 "-o", str(out_file), "--width", "64"]) == 0
    out = capsys.readouterr().out
    assert eval_line(out) == plain and "recorded 2 episode(s)" in out and out_file.is_file()
    model = load_run_model(run)
    returns, lengths = evaluate_policy(model, run_env(run, model), 4, seed=9, backend="gymnasium",
                                       return_episode_rewards=True)
    with Image.open(out_file) as gif:
        assert gif.n_frames == sum(lengths[:2]) + 2
    assert f"returns {returns[0]:.1f}, {returns[1]:.1f}:" in out
    assert main(["record", run, "--episodes", "1", "--width", "64", "--max-steps", "7"]) == 0
    assert "returns 7.0:" in capsys.readouterr().out
    with Image.open(runs["CartPole-v1"] / "episodes.gif") as gif:  # the default file, in the run folder
        assert gif.n_frames == 8


def test_mp4(runs, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    recording = record_run(runs["Pendulum-v1"], 1, tmp_path / "clip.mp4", seed=4, width=128)
    with imageio.get_reader(recording.path, format="FFMPEG") as reader:
        assert reader.count_frames() == recording.lengths[0] + 1 == 61


def test_an_env_without_rgb_array_and_bad_flags_get_one_sentence(runs, capsys, tmp_path):
    if "pgrl-test/NoRender-v0" not in gym.registry:
        gym.register("pgrl-test/NoRender-v0", entry_point="pgrl.envs.identity:IdentityEnv", max_episode_steps=10,
                     kwargs={"dim": 2})
    model_file = tmp_path / "model.safetensors"
    PPO("MlpPolicy", "pgrl-test/NoRender-v0", n_steps=8, seed=0).save(model_file)
    assert main(["record", str(model_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pgrl: error: pgrl-test/NoRender-v0 has no rgb_array render mode") and err.count("\n") == 1
    run = str(runs["CartPole-v1"])
    for argv, words in (
        (["record", run, "-o", str(tmp_path / "x.png")], "must be gif or mp4"),
        (["record", run, "--episodes", "0"], "--episodes must be at least 1"),
        (["eval", run, "--record", "--env-backend", "native"], "drop --env-backend native"),
        (["record", run, "-o", str(tmp_path / "missing" / "x.gif")], "does not exist"),
    ):
        assert main(argv) == 2
        assert words in capsys.readouterr().err
    assert not np.any([p.name.startswith(".") for p in tmp_path.iterdir()])  # no temporary file left


def test_compare_clip_section_embeds_one_gif_per_group(runs, tmp_path):
    from pgrl.record import clip_section
    from pgrl.report_html import write_report_html

    if "pgrl-test/NoRender-v0" not in gym.registry:
        gym.register("pgrl-test/NoRender-v0", entry_point="pgrl.envs.identity:IdentityEnv", max_episode_steps=10,
                     kwargs={"dim": 2})
    model_file = tmp_path / "norender.safetensors"
    PPO("MlpPolicy", "pgrl-test/NoRender-v0", n_steps=8, seed=0).save(model_file)
    section = clip_section({"ppo": runs["CartPole-v1"], "other": model_file}, tmp_path / "clips", max_steps=5,
                           width=64)
    assert [p.name for p in section.images] == ["ppo.gif"]
    with Image.open(section.images[0]) as gif:
        assert gif.n_frames == 6
    assert "other: no clip (pgrl-test/NoRender-v0 has no rgb_array render mode" in section.text
    page = write_report_html(tmp_path / "report.html", "t", [section]).read_text()
    assert page.count("data:image/gif;base64,") == 1
