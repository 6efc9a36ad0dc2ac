"""`pgrl export RUN_DIR --format onnx|torchscript`: the greedy policy as a file other runtimes load.

``GreedyPolicy`` wraps a model's policy as ``predict(obs, deterministic=True)`` runs it:
observation normalization (its statistics become constants of the graph), image scaling and
channel order (the policy's own preprocessing), Dict observations as one named input per key
(an ``action_mask`` key masks the actions, as predict does), and for LSTM policies the actor's
(h, c) state and the episode starts as inputs, the next (h, c) as outputs.  The policy is traced
with torch.jit.trace: TorchScript saves the trace, ONNX goes through torch's TorchScript-based
exporter (``dynamo=False``: it needs only the ``onnx`` package, ``pip install 'pgrl[export]'``).
A JSON sidecar (FILE.json) names the inputs and outputs with their dtypes and shapes (B: the
batch) and the observation and action spaces.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from pgrl.envs.normalize import DictObsNormalizer, ObsNormalizer
from pgrl.errors import ConfigError, PGRLError
from pgrl.obs import TensorDict, event_ndims, space_shape, storage_dtype
from pgrl.runs import write_atomic

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 17


class ExportError(PGRLError, ValueError):
    """A model pgrl cannot export (its policy or spaces), or a missing exporter package."""


class FoldedNormalizer(nn.Module):
    """An ObsNormalizer's transform with its statistics as constants: what it computes at eval time,
    in the same float64 arithmetic, so the exported actions equal predict's."""

    def __init__(self, normalizer: ObsNormalizer):
        super().__init__()
        stats = normalizer.stats
        self.register_buffer("mean", stats.mean.detach().clone())
        self.register_buffer("scale", torch.rsqrt(stats.var.detach() + normalizer.epsilon))
        self.clip = float(normalizer.clip)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.clamp((obs.double() - self.mean) * self.scale, -self.clip, self.clip).float()


class GreedyPolicy(nn.Module):
    """obs tensors (one per Dict key, in the space's order) [+ h, c, episode_start] -> actions [+ h, c]."""

    def __init__(self, model):
        super().__init__()
        self.policy = copy.deepcopy(model.policy).cpu().eval()
        self.space = model.observation_space
        self.keys = list(self.space.spaces) if isinstance(self.space, gym.spaces.Dict) else None
        normalizer = model.obs_normalizer
        if isinstance(normalizer, DictObsNormalizer):
            self.normalizers = nn.ModuleDict({k: FoldedNormalizer(n) for k, n in normalizer.normalizers.items()})
        elif isinstance(normalizer, ObsNormalizer):
            self.normalizers = nn.ModuleDict({"obs": FoldedNormalizer(normalizer)})
        else:
            self.normalizers = nn.ModuleDict()
        self.action_dtype = torch.from_numpy(np.zeros(0, dtype=model.action_space.dtype)).dtype
        self.requires_grad_(False)  # a frozen graph: its outputs need no autograd
        self.cpu()

    def forward(self, *inputs: torch.Tensor):
        n_obs = len(self.keys) if self.keys else 1
        obs_parts, state = inputs[:n_obs], inputs[n_obs:]
        masks = None
        if self.keys:
            named = {key: self._normalize(key, part) for key, part in zip(self.keys, obs_parts, strict=True)}
            obs = TensorDict(named, event_ndims(self.space))
            if "action_mask" in named:  # predict masks with it too
                masks = obs_parts[self.keys.index("action_mask")].reshape(obs_parts[0].shape[0], -1) != 0
        else:
            obs = self._normalize("obs", obs_parts[0])
        policy = self.policy
        if not policy.recurrent:
            actions, _ = policy.act(obs, deterministic=True, action_masks=masks)
            return policy.to_env(actions).to(self.action_dtype)
        h, c, starts = state
        zeros = torch.zeros_like(h)
        full = policy._join([(h, c)] + [(zeros, zeros)] * (policy.n_memories - 1))
        actions, _, _, after = policy.step(obs, full, starts, deterministic=True, action_masks=masks)
        h_next, c_next = policy._split(after)[0]
        return policy.to_env(actions).to(self.action_dtype), h_next, c_next

    def _normalize(self, key: str, obs: torch.Tensor) -> torch.Tensor:
        return self.normalizers[key](obs) if key in self.normalizers else obs


def signature(model) -> dict[str, Any]:
    """The sidecar: inputs and outputs (name, dtype, shape with "B" for the batch) and the spaces."""
    space, policy = model.observation_space, model.policy
    subspaces = space.spaces if isinstance(space, gym.spaces.Dict) else {"obs": space}
    inputs = [_tensor(name, storage_dtype(sub), ["B", *space_shape(sub)]) for name, sub in subspaces.items()]
    action_shape = ["B", *space_shape(model.action_space)]
    action_dtype = np.dtype(model.action_space.dtype).name
    outputs = [{"name": "actions", "dtype": action_dtype, "shape": action_shape}]
    if policy.recurrent:
        state_shape = [policy.n_lstm_layers, "B", policy.lstm_hidden_size]
        inputs += [_tensor("h", torch.float32, state_shape), _tensor("c", torch.float32, state_shape),
                   _tensor("episode_start", torch.bool, ["B"])]
        outputs += [_tensor("h_out", torch.float32, state_shape), _tensor("c_out", torch.float32, state_shape)]
    return {
        "algo": model.name,
        "env_id": model.env_id,
        "policy": type(policy).__name__,
        "recurrent": bool(policy.recurrent),
        "inputs": inputs,
        "outputs": outputs,
        "observation_space": repr(space),
        "action_space": repr(model.action_space),
        "normalized_observations": model.obs_normalizer is not None,
        "notes": ("observations as the env gives them (the graph normalizes and scales them); the greedy action "
                  "as predict(obs, deterministic=True) returns it"
                  + ("; pass zero h, c and episode_start=True at an episode's first step, then h_out, c_out"
                     if policy.recurrent else "")),
    }


def _tensor(name: str, dtype: torch.dtype, shape: list) -> dict[str, Any]:
    return {"name": name, "dtype": str(dtype).removeprefix("torch."), "shape": shape}


def example_inputs(model, batch: int = 2, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Random inputs in the exported signature (observations sampled from the space)."""
    space = model.observation_space
    subspaces = list(space.spaces.values()) if isinstance(space, gym.spaces.Dict) else [space]
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    parts = []
    for k, sub in enumerate(subspaces):
        sub = copy.deepcopy(sub)
        sub.seed(seed + k)
        parts.append(torch.as_tensor(np.stack([sub.sample() for _ in range(batch)]), dtype=storage_dtype(sub)))
    if model.policy.recurrent:
        shape = (model.policy.n_lstm_layers, batch, model.policy.lstm_hidden_size)
        parts += [torch.zeros(shape), torch.zeros(shape), torch.ones(batch, dtype=torch.bool)]
    return tuple(parts)


def export_model(model, out: str | Path, fmt: str = "onnx") -> Path:
    """Write ``model``'s greedy policy to ``out`` (.onnx or .pt) and its sidecar ``out`` + ".json"."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be onnx or torchscript, got '{fmt}'")
    out = Path(out)
    if not out.parent.is_dir():
        raise ConfigError(f"the folder of -o {out} does not exist; create it or choose another -o")
    if model.policy.n_stacked is not None:
        raise ExportError("a stacked policy (K seeds) cannot be exported; export each seed's model")
    sig = signature(model)
    names_in, names_out = [t["name"] for t in sig["inputs"]], [t["name"] for t in sig["outputs"]]
    module = GreedyPolicy(model)
    inputs = example_inputs(model)
    what = f"the {sig['policy']} of this {model.name} model of {model.env_id}"
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's and the exporter's deprecation and tracing notes
        try:
            traced = torch.jit.trace(module, inputs, check_trace=False)
            if fmt == "torchscript":
                torch.jit.save(traced, buffer)
            else:
                try:
                    import onnx  # noqa: F401
                except ImportError:
                    raise ConfigError("--format onnx needs the onnx package; install it with "
                                      "pip install 'pgrl[export]'") from None
                axes = {t["name"]: {t["shape"].index("B"): "B"} for t in sig["inputs"] + sig["outputs"]}
                with _quiet_stdout():  # on failure the exporter prints the whole graph before raising
                    torch.onnx.export(module, inputs, buffer, input_names=names_in, output_names=names_out,
                                      dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        except PGRLError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            fix = "; try --format torchscript" if fmt == "onnx" else "; its layers must be traceable by torch.jit.trace"
            raise ExportError(f"{what} cannot be exported to {fmt} ({first[:200]}){fix}") from None
    write_atomic(out, buffer.getvalue())
    write_atomic(Path(f"{out}.json"), (json.dumps({**sig, "format": fmt}, indent=2) + "\n").encode())
    return out


@contextmanager
def _quiet_stdout():
    """Send what C++ code writes to file descriptor 1 to /dev/null while the block runs."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def export_run(path: str | Path, fmt: str = "onnx", out: str | Path | None = None) -> Path:
    """Export the model of a run folder (or model file); ``out`` defaults to RUN_DIR/policy.onnx or .pt."""
    from pgrl.runs import load_run_model

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be onnx or torchscript, got '{fmt}'")
    if out is None:
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        out = folder / f"policy{FORMATS[fmt]}"
    return export_model(load_run_model(path, device="cpu"), out, fmt)


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    """Add `export` to the `pgrl` sub-parsers."""
    exp = subparsers.add_parser("export", help="write a run's greedy policy as ONNX or TorchScript (+ a JSON sidecar)")
    exp.add_argument("run_dir", help="run folder or model file")
    exp.add_argument("--format", default="onnx", choices=list(FORMATS), help="onnx (default) or torchscript")
    exp.add_argument("-o", "--out", default=None, metavar="FILE",
                     help="output file (default RUN_DIR/policy.onnx or policy.pt); the sidecar is FILE.json")
    return exp


def run_export(args: argparse.Namespace) -> int:
    out = export_run(args.run_dir, args.format, args.out)
    sig = json.loads(Path(f"{out}.json").read_text())
    names = ", ".join(t["name"] for t in sig["inputs"]) + " -> " + ", ".join(t["name"] for t in sig["outputs"])
    print(f"exported {sig['algo']} on {sig['env_id']} ({names}) to {out}; sidecar {out}.json")
    return 0
