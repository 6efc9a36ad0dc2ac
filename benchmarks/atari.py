"""PPO on Atari (Breakout, Pong) with rl-zoo's Atari preset, resumable: rerunning continues.

Each game trains through the command line, `pgrl train ppo ALE/Breakout-v5 --out
runs/bench_atari/breakout --checkpoint-every N`, so a stopped run loses at most N steps: the
next invocation of this script resumes it with `pgrl train --resume` (a finished one is left as
it is; a larger --steps trains it on).  The preset is pgrl's `atari` entry (rl-zoo's
hyperparams/ppo.yml atari: CnnPolicy, 8 envs x 128 steps, 4 epochs of 256, lin_2.5e-4,
clip lin_0.1, learner-side reward clipping) on pgrl's rl-zoo-style preprocessing.

Budgets count env steps of the frame-skipped env, as rl-zoo's n_timesteps does: the default
1e7 steps is 4e7 emulator frames.  Note that ALE/...-v5 ids keep the ALE's sticky actions
(repeat_action_probability 0.25), which rl-zoo's NoFrameskip-v4 runs do not have; pass
`--games BreakoutNoFrameskip-v4,PongNoFrameskip-v4` for rl-zoo's setting.

Writes, under --out: one run folder per game (metrics.csv, checkpoints/, summary.json, ...),
results.json (steps, env steps/s, final and best training return of whole games, greedy
evaluation, rl-zoo's published score) and atari_curves.png (training return against steps).

    .venv/bin/python -m benchmarks.atari                                  # both games, 1e7 steps each
    .venv/bin/python -m benchmarks.atari --games ALE/Pong-v5 --steps 2e6 --device cuda
    .venv/bin/python -m benchmarks.atari --steps 2048 --set n_steps=32 --out /tmp/atari_smoke   # a smoke run
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import machine, today

GAMES = ("ALE/Breakout-v5", "ALE/Pong-v5")
FRAME_SKIP = 4  # emulator frames per env step (pgrl.envs.atari.AtariFactory's default)
# rl-zoo benchmark.md, PPO at 10M steps, NoFrameskip-v4 (no sticky actions), one run each.
RL_ZOO = {"Breakout": 398.0, "Pong": 20.99}


def game_name(env_id: str) -> str:
    """ALE/Breakout-v5 -> Breakout, PongNoFrameskip-v4 -> Pong."""
    name = env_id.split("/")[-1]
    return re.sub(r"(NoFrameskip|Deterministic)?-v\d+$", "", name)


def run_slug(env_id: str) -> str:
    """The run folder's name: breakout for ALE/Breakout-v5, the whole id otherwise."""
    if env_id.startswith("ALE/") and env_id.endswith("-v5"):
        return game_name(env_id).lower()
    return env_id.replace("/", "_").lower()


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            rows.append({key: float(value) for key, value in row.items() if value not in ("", None)})
    return rows


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def is_finished(run_dir: Path, steps: int) -> bool:
    summary = read_json(run_dir / "summary.json")
    return bool(summary) and not summary.get("interrupted") and summary.get("num_timesteps", 0) >= steps


def has_checkpoints(run_dir: Path) -> bool:
    return any((run_dir / "checkpoints").glob("ckpt_*.safetensors"))


def train_command(env_id: str, run_dir: Path, args: argparse.Namespace, steps: int) -> list[str]:
    """`pgrl train` for this game: a fresh run, or --resume of the run folder's newest checkpoint."""
    cli = [sys.executable, "-m", "pgrl.cli", "train"]
    common = ["--total-timesteps", str(steps), "--eval-episodes", str(args.eval_episodes), "--device", args.device]
    if not sys.stdout.isatty():
        common.append("--no-progress")  # a background log gets the per-game lines below instead
    if has_checkpoints(run_dir):
        return [*cli, "--resume", str(run_dir), *common]
    every = args.checkpoint_every or max(1, min(200_000, steps // 10))
    overrides = [flag for pair in args.set for flag in ("--set", pair)]
    return [*cli, "ppo", env_id, "--seed", str(args.seed), "--out", str(run_dir), "--checkpoint-every", str(every),
            *overrides, *common]


def train_game(env_id: str, args: argparse.Namespace, steps: int) -> None:
    run_dir = args.out / run_slug(env_id)
    if is_finished(run_dir, steps):
        print(f"{env_id}: done ({run_dir}, {steps:,} steps)", flush=True)
        return
    if run_dir.exists() and not has_checkpoints(run_dir):
        # Stopped before its first checkpoint: nothing to resume, and `pgrl train --out` needs an empty folder.
        print(f"{env_id}: {run_dir} has no checkpoint yet; starting it again", flush=True)
        shutil.rmtree(run_dir)
    command = train_command(env_id, run_dir, args, steps)
    action = "resuming" if "--resume" in command else "training"
    print(f"{env_id}: {action} to {steps:,} env steps ({steps * FRAME_SKIP:,} frames): {' '.join(command[2:])}",
          flush=True)
    started = time.time()
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{env_id}: pgrl train exited with {done.returncode}; rerun this script to resume")
    rows = read_metrics(run_dir)
    if rows:
        last = rows[-1]
        print(f"{env_id}: {int(last['step']):,} env steps, {steps_per_second(rows):.0f} env steps/s "
              f"({steps_per_second(rows) * FRAME_SKIP:.0f} frames/s); this call {time.time() - started:.0f} s",
              flush=True)


def steps_per_second(rows: list[dict[str, float]]) -> float:
    last = rows[-1]
    return last["step"] / last["time/elapsed"] if last.get("time/elapsed") else math.nan


def result_of(env_id: str, args: argparse.Namespace, steps: int) -> dict | None:
    run_dir = args.out / run_slug(env_id)
    rows, config, summary = read_metrics(run_dir), read_json(run_dir / "config.json"), read_json(
        run_dir / "summary.json")
    if not rows or config is None:
        return None
    returns = [row["rollout/ep_return_mean"] for row in rows if "rollout/ep_return_mean" in row]
    trained = int(rows[-1]["step"])
    return {
        "env_id": env_id, "game": game_name(env_id), "run_dir": str(run_dir), "algo": config.get("algo"),
        "policy": (config.get("config") or {}).get("policy"), "seed": config.get("seed"),
        "steps": trained, "frames": trained * FRAME_SKIP, "budget": steps, "finished": is_finished(run_dir, steps),
        "train_seconds": rows[-1].get("time/elapsed"), "steps_per_second": steps_per_second(rows),
        "frames_per_second": steps_per_second(rows) * FRAME_SKIP,
        "final_return_mean": returns[-1] if returns else None, "best_return_mean": max(returns) if returns else None,
        "eval_episodes": (summary or {}).get("eval_episodes"), "eval_return_mean": (summary or {}).get(
            "eval_return_mean"),
        "rl_zoo_ppo_10M": RL_ZOO.get(game_name(env_id)),
    }


def plot(results: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        rows = read_metrics(Path(result["run_dir"]))
        points = [(row["step"], row["rollout/ep_return_mean"]) for row in rows if "rollout/ep_return_mean" in row]
        if points:
            ax.plot(*zip(*points, strict=True), label="pgrl PPO (training, whole games)")
        if result["rl_zoo_ppo_10M"] is not None:
            ax.axhline(result["rl_zoo_ppo_10M"], color="gray", ls="--", lw=1, label="rl-zoo PPO at 10M (v4)")
        ax.set_title(f"{result['env_id']} ({result['steps_per_second']:.0f} env steps/s)")
        ax.set_xlabel(f"env steps (x{FRAME_SKIP} frames)")
        ax.set_ylabel("episode return (raw score)")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = out / "atari_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", default=",".join(GAMES), help="comma-separated Atari ids")
    parser.add_argument("--steps", type=float, default=1e7, help="env steps per game (frames = 4x); default 1e7")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="env steps between checkpoints (default: a tenth of --steps, at most 200k)")
    parser.add_argument("--eval-episodes", type=int, default=5, help="greedy games after training (0: none)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a hyperparameter of new runs (resumed runs keep their config.json)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_atari"))
    parser.add_argument("--report-only", action="store_true", help="only rewrite results.json and the PNG")
    args = parser.parse_args(argv)
    steps = int(args.steps)
    games = [g for g in args.games.split(",") if g]
    print(f"machine: {machine()}; date: {today()}; {len(games)} games x {steps:,} env steps "
          f"({steps * FRAME_SKIP:,} frames)", flush=True)
    if not args.report_only:
        for env_id in games:
            train_game(env_id, args, steps)
    results = [r for r in (result_of(env_id, args, steps) for env_id in games) if r is not None]
    if not results:
        print("no runs to report yet", flush=True)
        return
    for r in results:
        if r["policy"] not in (None, "CnnPolicy"):
            print(f"warning: {r['env_id']} trained with {r['policy']}, not the preset's CnnPolicy", flush=True)
        final = "n/a" if r["final_return_mean"] is None else f"{r['final_return_mean']:.1f}"
        print(f"{r['env_id']}: {r['steps']:,}/{steps:,} steps, {r['steps_per_second']:.0f} env steps/s, training "
              f"return {final} (rl-zoo PPO 10M: {r['rl_zoo_ppo_10M']})", flush=True)
    write_json(args.out / "results.json", {"date": today(), "machine": machine(), "budget_steps": steps,
                                           "frame_skip": FRAME_SKIP, "results": results})
    print(f"wrote {args.out / 'results.json'} and {plot(results, args.out)}", flush=True)


if __name__ == "__main__":
    main()
