"""pgrl export: the ONNX and TorchScript files act as model.predict(..., deterministic=True) does."""

from __future__ import annotations

import json
from functools import partial

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgrl
from pgrl.cli import main
from pgrl.envs.identity import DictObsEnv, IdentityEnv, QuadrantImageEnv
from pgrl.export import example_inputs, export_model
from pgrl.policies import BaseFeaturesExtractor

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

N_OBS = 1000
SMALL = {"n_steps": 16, "n_envs": 2, "batch_size": 32, "seed": 0}


class MultiDiscreteEnv(IdentityEnv):
    """The identity task on MultiDiscrete([2, 3, 4]): heads of unequal sizes (the padded case)."""

    def __init__(self):
        super().__init__(space=gym.spaces.MultiDiscrete([2, 3, 4]), ep_length=20)


CASES = {  # (policy, env, extra): normalize where the observations are vectors, so its statistics are folded in
    "discrete": ("MlpPolicy", "CartPole-v1", {"normalize": True}),
    "box": ("MlpPolicy", "Pendulum-v1", {"normalize": True}),
    "multidiscrete": ("MlpPolicy", MultiDiscreteEnv, {}),
    "dict": ("MultiInputPolicy", partial(DictObsEnv, ep_length=20), {"normalize": True}),
    "cnn": ("CnnPolicy", partial(QuadrantImageEnv, channel_last=True, channels=3, ep_length=20), {}),
    "lstm": ("MlpLstmPolicy", "CartPole-v1", {"normalize": True, "policy_kwargs": {"lstm_hidden_size": 32}}),
}


def make_model(case: str):
    policy, env, extra = CASES[case]
    model = pgrl.PPO(policy, env, **SMALL, **extra)
    model.learn(64)  # moves the normalizer's statistics off their start (equality, not quality, is tested)
    spread_actions(model)
    return model


def spread_actions(model) -> None:
    """Give the actor's head unit-scale weights: its initial 0.01 gain makes near-constant greedy actions."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.policy.pi_head.parameters():
            param.copy_(torch.randn(param.shape, generator=generator))


def run_exported(path, fmt: str, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    if fmt == "onnx":
        session = ort.InferenceSession(str(path))
        names = [i.name for i in session.get_inputs()]
        return session.run(None, {name: x.numpy() for name, x in zip(names, inputs, strict=True)})
    outputs = torch.jit.load(str(path))(*inputs)
    return [t.numpy() for t in (outputs if isinstance(outputs, tuple) else (outputs,))]


def assert_actions_equal(got: np.ndarray, expected: np.ndarray, space: gym.Space) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if isinstance(space, gym.spaces.Box):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.fixture(scope="module")
def models():
    return {case: make_model(case) for case in CASES}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("case", list(CASES))
def test_exported_policy_equals_predict_on_1000_observations(models, case, fmt, tmp_path):
    model = models[case]
    if model.obs_normalizer is not None:
        assert not torch.allclose(next(iter(model.obs_normalizer.state_dict().values())).double(),
                                  torch.zeros(()).double())
    path = export_model(model, tmp_path / f"policy.{'onnx' if fmt == 'onnx' else 'pt'}", fmt)
    inputs = example_inputs(model, N_OBS, torch.Generator().manual_seed(7))
    outputs = run_exported(path, fmt, inputs)
    space = model.observation_space
    obs = ({k: x.numpy() for k, x in zip(space.spaces, inputs, strict=False)} if isinstance(space, gym.spaces.Dict)
           else inputs[0].numpy())
    if model.policy.recurrent:  # the first step of 1000 episodes
        expected, (h, c) = model.predict(obs, episode_start=np.ones(N_OBS, dtype=bool), deterministic=True)
        np.testing.assert_allclose(outputs[1], h, rtol=0, atol=1e-5)
        np.testing.assert_allclose(outputs[2], c, rtol=0, atol=1e-5)
    else:
        expected, _ = model.predict(obs, deterministic=True)
    assert len(np.unique(np.asarray(expected).reshape(N_OBS, -1), axis=0)) > 1, "a constant policy tests little"
    assert_actions_equal(outputs[0], expected, model.action_space)
    sidecar = json.loads((tmp_path / f"{path.name}.json").read_text())
    assert [t["name"] for t in sidecar["inputs"]][: len(inputs)] == (
        list(space.spaces) if isinstance(space, gym.spaces.Dict) else ["obs"]) + (
        ["h", "c", "episode_start"] if model.policy.recurrent else [])
    assert sidecar["format"] == fmt and sidecar["action_space"] == repr(model.action_space)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_lstm_carries_its_state_through_a_50_step_episode(fmt, tmp_path):
    model = pgrl.PPO("MlpLstmPolicy", "Pendulum-v1", **SMALL, normalize=True, policy_kwargs={"lstm_hidden_size": 16})
    model.learn(64)
    spread_actions(model)
    path = export_model(model, tmp_path / "policy", fmt)
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=3)
    state, start = None, True
    zeros = torch.zeros(1, 1, 16)
    h, c = zeros, zeros
    for _ in range(50):
        expected, state = model.predict(obs, state=state, episode_start=np.array([start]), deterministic=True)
        actions, h, c = run_exported(path, fmt, (torch.as_tensor(obs[None]), torch.as_tensor(h), torch.as_tensor(c),
                                                 torch.tensor([start])))
        np.testing.assert_allclose(actions[0], expected, rtol=0, atol=1e-5)
        np.testing.assert_allclose(h, state[0], rtol=0, atol=1e-5)
        obs, _, terminated, truncated, _ = env.step(expected)
        start = False
        assert not (terminated or truncated)
    assert np.abs(h).max() > 0.01  # the state moved


class Spectrum(BaseFeaturesExtractor):
    """An extractor with an op ONNX's exporter does not have (torch.fft)."""

    def __init__(self, space):
        super().__init__(space, 4)

    def forward(self, x):
        return torch.fft.fft(x).abs()


def test_cli_export_and_a_model_that_cannot_be_exported(capsys, tmp_path):
    run = tmp_path / "run"
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", **SMALL)
    run.mkdir()
    model.save(run / "model.safetensors")
    assert main(["export", str(run)]) == 0
    assert "obs -> actions" in capsys.readouterr().out and (run / "policy.onnx.json").is_file()
    assert main(["export", str(run), "--format", "torchscript", "-o", str(tmp_path / "p.pt")]) == 0
    assert (tmp_path / "p.pt").is_file() and (tmp_path / "p.pt.json").is_file()
    capsys.readouterr()
    bad = pgrl.PPO("MlpPolicy", "CartPole-v1", **SMALL, policy_kwargs={"features_extractor_class": Spectrum})
    with pytest.raises(pgrl.errors.PGRLError, match="cannot be exported to onnx .*fft.*; try --format torchscript"):
        export_model(bad, tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()
    assert capsys.readouterr().out == ""  # the exporter's graph dump is kept off the terminal
    assert main(["export", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
