"""Fuzzing the loaders: mutated, truncated and rewritten model and checkpoint files.

Whatever the bytes, loading ends in pgrl's CheckpointError (or succeeds when the mutation only
changed tensor values), never another exception, and never runs code: pgrl does not unpickle,
which a pickle payload that would create a marker file checks too.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pgrl import PPO
from pgrl.checkpoint import Checkpointer, checkpoint_files, load_checkpoint, read_model_file
from pgrl.errors import CheckpointError

TINY = {
    "n_steps": 16,
    "n_envs": 2,
    "batch_size": 16,
    "n_epochs": 1,
    "normalize": True,
    "normalize_reward": True,
    "kl_coef": 0.1,
    "policy_kwargs": {"net_arch": [4]},
}
ODD_VALUES = [None, -1, 0, 2**70, 1e308, float("nan"), "x", "", [], [1, "a"], {}, {"type": "Box"}, True]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz")
    model = PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **TINY)
    model.learn(64, checkpointer=Checkpointer(folder, every=64))
    model.save(folder / "model")
    return {
        "model": (folder / "model.safetensors").read_bytes(),
        "checkpoint": checkpoint_files(folder)[-1][1].read_bytes(),
    }


def byte_mutation(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:  # truncate
        return data[: rng.randrange(len(data))]
    if kind == 1:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
    buf = bytearray(data)
    header_len = 8 + int.from_bytes(data[:8], "little")
    for _ in range(rng.randint(1, 8)):
        # most flips go into the 8-byte length and the JSON header, where the parsing happens
        at = rng.randrange(header_len if kind != 4 and rng.random() < 0.9 else len(buf))
        buf[at] = rng.randrange(256) if kind != 3 else buf[at] ^ (1 << rng.randrange(8))
    return bytes(buf)


def header_mutation(path: Path, data: bytes, rng: random.Random) -> None:
    """Rewrite a valid file with one JSON field, tensor shape or dtype changed."""
    path.write_bytes(data)
    with safe_open(str(path), framework="pt") as handle:
        header = json.loads(handle.metadata()["pgrl"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    if rng.random() < 0.7:
        node, keys = header, []
        while isinstance(node, dict | list) and node and (not keys or rng.random() < 0.6):
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            keys.append(key)
            parent, node = node, node[key]
        if keys:
            if rng.random() < 0.2 and isinstance(parent, dict):
                del parent[keys[-1]]
            else:
                parent[keys[-1]] = rng.choice(ODD_VALUES)
    else:
        key = rng.choice(sorted(tensors))
        value = tensors[key]
        choice = rng.randrange(4)
        if choice == 0:
            tensors[key] = value.flatten()[: max(0, value.numel() - 1)]
        elif choice == 1:
            tensors[key] = value.to(rng.choice([torch.float64, torch.int64, torch.uint8, torch.float16]))
        elif choice == 2:
            del tensors[key]
        else:
            tensors[key + "x"] = value.clone()
    save_file(tensors, str(path), metadata={"pgrl": json.dumps(header)})


def try_load(path: Path, kind: str, target: PPO) -> None:
    try:
        if kind == "model":
            PPO.load(path, device="cpu")
        else:
            load_checkpoint(target, path)
    except CheckpointError as exc:
        message = str(exc)
        assert message and "\n" not in message
        assert "Traceback" not in message


@pytest.mark.parametrize("kind", ["model", "checkpoint"])
def test_mutated_files_only_ever_raise_checkpoint_error(files, kind, tmp_path):
    rng = random.Random(f"pgrl-{kind}")
    target = PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **TINY)
    path = tmp_path / f"{kind}.safetensors"
    for i in range(1500):
        if i % 3 == 2:
            header_mutation(path, files[kind], rng)
        else:
            path.write_bytes(byte_mutation(files[kind], rng))
        try_load(path, kind, target)


def test_every_truncation_of_a_checkpoint_is_a_checkpoint_error(files, tmp_path):
    data = files["checkpoint"]
    target = PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **TINY)
    path = tmp_path / "cut.safetensors"
    for length in sorted({*range(0, 400), *range(400, len(data), max(1, len(data) // 500))}):
        path.write_bytes(data[:length])
        with pytest.raises(CheckpointError):
            load_checkpoint(target, path)


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(_Payload.marker),))


def test_a_pickle_file_is_rejected_without_running_it(tmp_path):
    _Payload.marker = str(tmp_path / "pwned")
    for name in ("model.safetensors", "model.pt"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps({"policy": _Payload()}))
        with pytest.raises(CheckpointError, match="is not a readable pgrl model"):
            read_model_file(path)
        with pytest.raises(CheckpointError):
            PPO.load(path)
    assert not (tmp_path / "pwned").exists()
