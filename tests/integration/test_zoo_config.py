"""`pgrl train ALGO ENV --config rl-zoo-file.yml`: rl-zoo's files as they are, through the CLI."""

from __future__ import annotations

import json
import warnings

import pytest

from pgrl import zoo
from pgrl.algos import ALGORITHMS
from pgrl.cli import main
from pgrl.runs import env_for

ZOO_DIR = zoo.rl_zoo_hyperparams_dir()
ZOO_MISSING = "rl_zoo3 is not installed; make install brings it (pip install --no-deps rl_zoo3==2.9.2)"


def test_train_takes_rl_zoo_ppo_file(tmp_path):
    assert ZOO_DIR is not None, ZOO_MISSING
    run = tmp_path / "run"
    assert main(["train", "ppo", "CartPole-v1", "--config", str(ZOO_DIR / "ppo.yml"), "--total-timesteps", "512",
                 "--no-progress", "--eval-episodes", "1", "--out", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["preset"] == "none"
    config = saved["config"]
    assert (config["n_envs"], config["n_steps"], config["batch_size"], config["gae_lambda"]) == (8, 32, 256, 0.8)
    assert config["learning_rate"] == "lin_0.001" and config["n_timesteps"] == 100_000


def test_unsupported_keys_warn_one_sentence_and_training_goes_on(tmp_path, capsys):
    path = tmp_path / "zoo.yml"
    path.write_text("CartPole-v1:\n  n_envs: 2\n  n_steps: 16\n  batch_size: 32\n  frame_stack: 2\n"
                    "  policy_kwargs: \"dict(net_arch=[32], optimizer_class=RMSpropTFLike)\"\n  callback: foo.Bar\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "ppo", "CartPole-v1", "--config", str(path), "--total-timesteps", "64",
                     "--no-progress", "--eval-episodes", "0", "--out", str(tmp_path / "run")]) == 0
    notes = sorted(str(w.message) for w in caught if issubclass(w.category, zoo.ZooWarning))
    assert len(notes) == 3, notes
    assert all("CartPole-v1" in n for n in notes)
    assert any(n.startswith("callback") for n in notes) and any(n.startswith("frame_stack 2") for n in notes)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["policy_kwargs"]["net_arch"] == [32]


def test_rl_zoo_file_with_a_preset_is_one_error(tmp_path, capsys):
    path = tmp_path / "zoo.yml"
    path.write_text("CartPole-v1:\n  n_steps: 16\n")
    assert main(["train", "ppo", "CartPole-v1", "--config", str(path), "--preset", "fast",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pgrl: error: --preset fast cannot be used with") and err.count("\n") == 1
    assert main(["train", "ppo", "Acrobot-v1", "--config", str(path), "--out", str(tmp_path / "run2")]) == 2
    assert "has no entry for Acrobot-v1" in capsys.readouterr().err


@pytest.mark.slow
def test_every_installed_rl_zoo_entry_builds_a_model():
    """Past the config: each entry builds its model on its env (wrappers, policy, spaces)."""
    def build(algo, env_id, entry):
        hparams = dict(entry.hparams)
        env = env_for(env_id, {"env_kwargs": entry.env_kwargs, "env_wrappers": entry.env_wrappers})
        model = ALGORITHMS[algo](hparams.pop("policy", None), env, preset="none", device="cpu", **hparams)
        model.env.close()

    counts = {}
    for stem in zoo.ZOO_FILES:
        rows = zoo.survey(stem, build=build)
        assert all(r.status != "fails" for r in rows), [(r.env_id, r.detail) for r in rows if r.status == "fails"]
        counts[stem] = sum(r.status != "not installed" for r in rows)
    assert all(counts.values()), counts
