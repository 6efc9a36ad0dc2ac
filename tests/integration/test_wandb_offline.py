"""`pgrl train --wandb --wandb-offline`: an offline W&B run in the run folder with metrics.csv's keys."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

from pgrl.cli import main

BLOCK, HEADER = 32768, 7  # W&B's transaction log: LevelDB-style 32 KiB blocks of checksummed chunks


def wandb_records(path: Path):
    """The protobuf records of a .wandb file (the LevelDB log format W&B writes: FULL/FIRST/MIDDLE/LAST)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = HEADER, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            break
        if kind in (1, 2):
            pending = chunk
        else:
            pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_offline_run_holds_the_metrics_csv_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # any network attempt would fail fast
    run = tmp_path / "run"
    assert main(["train", "ppo", "CartPole-v1", "--total-timesteps", "3000", "--no-progress", "--eval-episodes", "2",
                 "--wandb", "--wandb-offline", "--wandb-project", "pgrl-test", "--out", str(run)]) == 0
    files = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, list((run / "wandb").rglob("*"))
    records = list(wandb_records(files[0]))
    history = [{item.key or item.nested_key[0]: item.value_json for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    metric_rows = [h for h in history if any(not k.startswith(("_", "figures/")) for k in h)]
    with (run / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0]) - {"step"}
    logged = {k for h in metric_rows for k in h if not k.startswith(("_", "figures/"))}
    assert logged == columns
    assert [int(h["_step"]) for h in metric_rows] == [int(float(r["step"])) for r in rows]
    assert any("figures/learning_curve" in h for h in history)  # the run folder's PNG, kept with the run
    assert list(files[0].parent.glob("files/media/images/figures/learning_curve_*.png"))
    run_record = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run_record.project == "pgrl-test"
    config = {item.key: json.loads(item.value_json) for item in run_record.config.update}  # the run's config.json
    saved = json.loads((run / "config.json").read_text())
    assert config["algo"] == "ppo" and config["env_id"] == "CartPole-v1"
    assert config["config"] == saved["config"]
