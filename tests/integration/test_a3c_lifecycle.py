"""A3C's process lifecycle: failures end the run quickly, with one message, and leave no process.

Workers are spawned processes; a worker that is killed or raises must make ``learn`` raise a
``TrainingError`` naming the worker within 10 s, and every worker process must be gone (reaped)
afterwards.  Also: Ctrl-C in the parent, shared optimizer state, a save/load round trip, and a
checkpoint round trip (shared model and shared optimizer moments; still shared after loading).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import numpy as np
import pytest
import torch

import pgrl
from pgrl.checkpoint import Checkpointer, checkpoint_files, load_checkpoint, read_model_file
from pgrl.errors import TrainingError
from pgrl.optim import SharedAdam, SharedRMSprop

SMALL = {"n_workers": 2, "n_envs": 2, "n_steps": 5, "env_backend": "gymnasium"}
BIG_BUDGET = 200_000  # not reached: these runs end by failure or interruption (log rows every 1000 steps)


def _gone(pid: int) -> bool:
    """True when no process (not even a zombie) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie still answers kill(pid, 0); it must have been reaped too
        with open(f"/proc/{pid}/status") as handle:
            return "zombie" in handle.read()
    except FileNotFoundError:
        return True


def _assert_no_workers_left(model) -> None:
    assert len(model.worker_pids) == SMALL["n_workers"]
    left = [pid for pid in model.worker_pids if not _gone(pid)]
    assert not left, f"worker processes {left} are still alive"
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("pgrl-a3c")]


def _failing_schedule(progress_remaining: float) -> float:
    """A learning rate that raises in worker 1 once training has begun (module level: picklable)."""
    if multiprocessing.current_process().name == "pgrl-a3c-worker-1" and progress_remaining < 0.9999:
        raise RuntimeError("schedule exploded on purpose")
    return 7e-4


def test_killed_worker_ends_the_run_with_its_name():
    model = pgrl.A3C("MlpPolicy", "CartPole-v1", seed=3, **SMALL)
    killed_at: list[float] = []

    def kill_worker_1(algo, row):
        if not killed_at and algo.num_timesteps >= 200:
            os.kill(algo.worker_pids[1], signal.SIGKILL)
            killed_at.append(time.monotonic())

    with pytest.raises(TrainingError, match=r"a3c worker 1 died \(killed by signal 9, SIGKILL\) at step \d+"):
        model.learn(BIG_BUDGET, callback=kill_worker_1)
    assert killed_at, "the callback never ran"
    assert time.monotonic() - killed_at[0] < 10.0
    _assert_no_workers_left(model)


def test_raising_worker_reports_its_error_text():
    model = pgrl.A3C("MlpPolicy", "CartPole-v1", seed=4, learning_rate=_failing_schedule, **SMALL)
    started = time.monotonic()
    with pytest.raises(TrainingError) as info:
        model.learn(BIG_BUDGET)
    message = str(info.value)
    assert message.startswith("a3c worker 1 failed at step ")
    assert "RuntimeError: schedule exploded on purpose" in message
    assert any("_failing_schedule" in note for note in getattr(info.value, "__notes__", []))  # the traceback
    assert time.monotonic() - started < 60.0  # worker start-up (imports) included
    _assert_no_workers_left(model)


def test_ctrl_c_in_the_parent_stops_every_worker():
    model = pgrl.A3C("MlpPolicy", "CartPole-v1", seed=5, **SMALL)
    interrupted_at: list[float] = []

    def press_ctrl_c(algo, row):
        if not interrupted_at and algo.num_timesteps >= 200:
            interrupted_at.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

    # A shell that starts pytest in the background (`cmd &`) makes it ignore SIGINT; Ctrl-C must
    # reach this process as it does at a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            model.learn(BIG_BUDGET, callback=press_ctrl_c)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - interrupted_at[0] < 10.0
    _assert_no_workers_left(model)
    assert model.num_timesteps >= 200  # the shared model trained so far is kept


def test_budget_is_respected_and_workers_exit_cleanly():
    model = pgrl.A3C("MlpPolicy", "CartPole-v1", seed=6, **SMALL)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(1_000)
    per_round = SMALL["n_workers"] * SMALL["n_envs"] * SMALL["n_steps"]
    assert 1_000 <= model.num_timesteps < 1_000 + per_round
    assert any(not torch.equal(b, p) for b, p in zip(before, model.policy.parameters(), strict=True))
    _assert_no_workers_left(model)
    model.learn(500, reset_num_timesteps=False)  # learning again continues the step count with new workers
    assert model.num_timesteps >= 1_500


def test_save_load_round_trip_predicts_the_same(tmp_path):
    model = pgrl.A3C("MlpPolicy", "CartPole-v1", seed=7, **SMALL, policy_kwargs={"net_arch": {"pi": [32], "vf": [16]}})
    model.learn(1_000)
    path = model.save(tmp_path / "a3c")
    loaded = pgrl.A3C.load(path)
    assert loaded.config == model.config and loaded.num_timesteps == model.num_timesteps
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], model.predict(obs)[0])
    for (name, a), b in zip(model.policy.state_dict().items(), loaded.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert pgrl.Algorithm.load(path).name == "a3c"


def _step_shared_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    model.weight.grad = torch.ones_like(model.weight)
    model.bias.grad = torch.ones_like(model.bias)
    optimizer.step()


@pytest.mark.parametrize("cls", [SharedAdam, SharedRMSprop])
def test_optimizer_state_is_shared_with_worker_processes(cls):
    model = torch.nn.Linear(3, 2)
    model.share_memory()
    optimizer = cls(model.parameters(), lr=0.1)
    state = optimizer.state[model.weight]
    assert all(value.is_shared() for value in state.values())
    before = model.weight.detach().clone()
    ctx = multiprocessing.get_context("spawn")
    for _ in range(2):  # two processes, one after the other, step the same optimizer
        proc = ctx.Process(target=_step_shared_optimizer, args=(model, optimizer))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
    assert float(state["step"]) == 2.0  # the step count is shared, not per process
    moment = state["exp_avg"] if cls is SharedAdam else state["square_avg"]
    assert torch.all(moment > 0)
    assert not torch.equal(before, model.weight)


def test_checkpoint_round_trip_keeps_the_optimizer_state_in_shared_memory(tmp_path):
    """Checkpoints written while workers run all load; the final one restores parameters and both
    optimizers' moments and step counts exactly, into shared memory that new workers then step."""
    kwargs = {**SMALL, "vf_learning_rate": 1e-3, "vf_optimizer": "rmsprop"}
    model = pgrl.A3C("MlpPolicy", "CartPole-v1", seed=8, **kwargs)
    model.learn(1_000, checkpointer=Checkpointer(tmp_path, every=300, keep=10))
    files = checkpoint_files(tmp_path)
    # Periodic checkpoints are written when the supervisor polls (every 0.25 s), so how many a
    # 1,000-step run gets depends on the machine's speed; the final one is always there.
    # (tests/learning/test_a3c_resume.py kills runs between periodic checkpoints.)
    assert files and files[-1][0] == model.num_timesteps
    for _, path in files:
        header, _ = read_model_file(path)
        assert header["kind"] == "checkpoint" and header["algo"] == "a3c"

    loaded = pgrl.A3C("MlpPolicy", "CartPole-v1", seed=99, **kwargs)
    state = load_checkpoint(loaded, files[-1][1])
    assert loaded.num_timesteps == model.num_timesteps and state["start_step"] == 0
    for (name, a), b in zip(model.policy.state_dict().items(), loaded.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
        assert b.is_shared(), name
    assert set(loaded.optimizers()) == {"optimizer", "vf_optimizer"}
    assert isinstance(loaded.vf_optimizer, SharedRMSprop) and isinstance(loaded.optimizer, SharedAdam)
    for name, optimizer in model.optimizers().items():
        mine = getattr(loaded, name)
        for p, q in zip(optimizer.param_groups[0]["params"], mine.param_groups[0]["params"], strict=True):
            saved, restored = optimizer.state[p], mine.state[q]
            assert set(saved) == set(restored) and float(restored["step"]) > 0
            for key, value in saved.items():
                assert torch.equal(value, restored[key]), (name, key)
                assert restored[key].is_shared(), (name, key)

    # New workers step the loaded (shared) state: the parent sees their step counts and moments.
    first = loaded.optimizer.param_groups[0]["params"][0]
    steps_before = float(loaded.optimizer.state[first]["step"])
    moment_before = loaded.optimizer.state[first]["exp_avg"].clone()
    loaded.learn(400)
    per_update = SMALL["n_envs"] * SMALL["n_steps"]
    assert float(loaded.optimizer.state[first]["step"]) >= steps_before + 400 // per_update
    assert not torch.equal(moment_before, loaded.optimizer.state[first]["exp_avg"])
