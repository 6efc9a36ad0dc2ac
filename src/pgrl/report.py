"""Plots and reports from run folders (metrics.csv, config.json, summary.json).

``plot_learning_curve`` draws one run; ``build_report`` groups many runs by (algorithm, setting)
and writes report.html, results.csv and the figures (pgrl.report_plots) into one folder.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pgrl.errors import PGRLError
from pgrl.report_html import format_cell


def read_metrics(path: str | Path) -> dict[str, list[float]]:
    """metrics.csv as columns of floats (empty cells become nan)."""
    columns: dict[str, list[float]] = {}
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                try:
                    number = float(value) if value not in ("", None) else math.nan
                except ValueError:
                    number = math.nan
                columns.setdefault(key, []).append(number)
    return columns


def plot_learning_curve(run_dir: str | Path, title: str | None = None) -> Path | None:
    """learning_curve.png: recent mean episode return against env steps and wall-clock seconds."""
    from matplotlib.figure import Figure  # no pyplot: a second less at the end of every `pgrl train`

    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.csv"
    if not metrics_path.exists():
        return None
    data = read_metrics(metrics_path)
    steps, returns = data.get("step", []), data.get("rollout/ep_return_mean", [])
    seconds = data.get("time/elapsed", [])
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, x, label in ((axes[0], steps, "environment steps"), (axes[1], seconds, "training seconds")):
        ax.plot(x, returns, color="#1f77b4", linewidth=1.8)
        ax.set_xlabel(label)
        ax.set_ylabel("mean episode return (last 100)")
        ax.grid(alpha=0.3)
    fig.suptitle(title or run_dir.name)
    out = run_dir / "learning_curve.png"
    fig.savefig(out, dpi=110)
    return out


# -- comparison reports: many run folders grouped by (algorithm, setting) -----------------------

RETURN = "rollout/ep_return_mean"


@dataclass
class RunInfo:
    """One run folder as a report sees it."""

    path: Path
    algo: str
    env_id: str
    seed: int
    hparams: dict[str, Any]  # config["config"] flattened ("policy_kwargs.net_arch"), plus "preset"
    metrics: dict[str, list[float]]
    summary: dict[str, Any] | None  # summary.json, None when the run did not finish
    group: str = ""

    @property
    def final_return(self) -> tuple[float, str]:
        """(final return, source): the greedy evaluation when summary.json has one, else the last training mean."""
        if self.summary and self.summary.get("eval_return_mean") is not None:
            return float(self.summary["eval_return_mean"]), "eval"
        finite = [v for v in self.metrics.get(RETURN, []) if math.isfinite(v)]
        return (finite[-1] if finite else math.nan), "train"


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_run(path: str | Path) -> RunInfo:
    """Read a run folder (config.json, metrics.csv, summary.json if present); PGRLError when it is not one."""
    path = Path(path)
    if not path.exists():
        raise PGRLError(f"run folder {path} does not exist; check the path")
    if not path.is_dir():
        raise PGRLError(f"{path} is a file, not a run folder; pass folders written by pgrl train or pgrl compare")
    config_path, metrics_path = path / "config.json", path / "metrics.csv"
    if not config_path.is_file() or not metrics_path.is_file():
        missing = "config.json" if not config_path.is_file() else "metrics.csv"
        raise PGRLError(
            f"{path} is not a run folder (it has no {missing}); pass folders written by pgrl train "
            "(for a pgrl compare output: OUT/runs/*/*)"
        )
    try:
        config = json.loads(config_path.read_text())
        algo, env_id, seed = str(config["algo"]), str(config["env_id"]), int(config["seed"])
        hparams = _flatten(dict(config.get("config") or {}))
    except (ValueError, KeyError, TypeError):
        raise PGRLError(f"{config_path} is damaged or not a pgrl run config; re-run that training") from None
    hparams["preset"] = config.get("preset", "default")
    summary = None
    if (path / "summary.json").is_file():
        try:
            summary = json.loads((path / "summary.json").read_text())
        except ValueError:
            summary = None
    return RunInfo(path, algo, env_id, seed, hparams, read_metrics(metrics_path), summary)


def _value_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(_value_text(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def group_runs(runs: list[RunInfo]) -> dict[str, list[RunInfo]]:
    """Group by (algorithm, setting); the label is the algorithm plus the hyperparameters whose values
    differ among that algorithm's runs, e.g. ``a2c gae_lambda=0.9``.  Groups keep first-seen order."""
    by_algo: dict[str, list[RunInfo]] = {}
    for run in runs:
        by_algo.setdefault(run.algo, []).append(run)
    groups: dict[str, list[RunInfo]] = {}
    for algo, algo_runs in by_algo.items():
        keys = sorted({k for r in algo_runs for k in r.hparams})
        differing = [k for k in keys if len({json.dumps(r.hparams.get(k), sort_keys=True) for r in algo_runs}) > 1]
        for run in algo_runs:
            run.group = " ".join([algo] + [f"{k}={_value_text(run.hparams.get(k))}" for k in differing])
            groups.setdefault(run.group, []).append(run)
    return groups


def load_runs(paths: list[str | Path]) -> list[RunInfo]:
    """Load run folders of one environment (PGRLError when none are given or the envs differ)."""
    if not paths:
        raise PGRLError("no run folders given; pass one or more folders written by pgrl train or pgrl compare")
    runs = [load_run(p) for p in paths]
    envs = sorted({r.env_id for r in runs})
    if len(envs) > 1:
        raise PGRLError(f"the run folders are from different environments ({', '.join(envs)}); "
                        "report one environment at a time")
    return runs


def default_threshold(env_id: str) -> float | None:
    """The env spec's reward_threshold (475 for CartPole-v1), None when it has none or is unknown."""
    try:
        import gymnasium

        value = gymnasium.spec(env_id).reward_threshold
    except Exception:  # an id Gymnasium does not know (a native-only env): no default
        return None
    return float(value) if value is not None else None


def first_reach(metrics: dict[str, list[float]], threshold: float) -> tuple[float, float]:
    """(steps, seconds) at the first row whose rollout/ep_return_mean >= threshold; (nan, nan) if never."""
    steps, seconds = metrics.get("step", []), metrics.get("time/elapsed", [])
    for i, ret in enumerate(metrics.get(RETURN, [])):
        if math.isfinite(ret) and ret >= threshold:
            return steps[i], (seconds[i] if i < len(seconds) else math.nan)
    return math.nan, math.nan


RESULT_COLUMNS = [
    "group", "algo", "seeds", "final_return_mean", "final_return_iqm", "iqm_ci95_low", "iqm_ci95_high",
    "median_steps_to_threshold", "median_seconds_to_threshold", "solve_rate",
]


def results_table(groups: dict[str, list[RunInfo]], threshold: float | None) -> tuple[list[str], list[list], str]:
    """One row per group (RESULT_COLUMNS) and a caption that says where the final returns come from."""
    from pgrl.stats import bootstrap_ci, iqm

    rows, sources = [], {"eval": 0, "train": 0}
    for label, runs in groups.items():
        finals = []
        for run in runs:
            value, source = run.final_return
            sources[source] += 1
            finals.append(value)
        finite = np.array([v for v in finals if math.isfinite(v)])
        mean = float(finite.mean()) if finite.size else math.nan
        center = iqm(finite) if finite.size else math.nan
        low, high = bootstrap_ci(finite, statistic=iqm) if finite.size else (math.nan, math.nan)
        steps = seconds = rate = None
        if threshold is not None:
            reached = [first_reach(run.metrics, threshold) for run in runs]
            hit = [r for r in reached if math.isfinite(r[0])]
            steps = float(np.median([r[0] for r in hit])) if hit else None
            seconds = float(np.median([r[1] for r in hit])) if hit else None
            rate = len(hit) / len(runs)
        rows.append([label, runs[0].algo, len(runs), mean, center, low, high, steps, seconds, rate])
    caption = (
        "Final return: the greedy evaluation return (summary.json eval_return_mean) for "
        f"{sources['eval']} run(s), the last training return (rollout/ep_return_mean) for {sources['train']}. "
        "IQM: interquartile mean across seeds, with a 95% percentile-bootstrap interval. "
    )
    if threshold is not None:
        caption += (f"Threshold {threshold:g}: steps and seconds (medians over the seeds that reached it) to the "
                    "first training row whose rollout/ep_return_mean reached it; solve rate = seeds that reached it.")
    else:
        caption += "No threshold (the env spec has none; pass --threshold), so those columns are blank."
    return RESULT_COLUMNS, rows, caption


def display_table(rows: list[list], threshold: float | None) -> tuple[list[str], list[list]]:
    """results_table rows for people: the CI in one cell, the solve rate as a count."""
    to = f"{threshold:g}" if threshold is not None else "threshold"
    columns = ["group", "seeds", "final return (mean)", "final return (IQM)", "IQM 95% CI",
               f"median steps to {to}", f"median seconds to {to}", "solved"]
    shown = []
    for group, _algo, seeds, mean, center, low, high, steps, seconds, rate in rows:
        ci = "" if math.isnan(low) else f"{format_cell(low)} – {format_cell(high)}"
        solved = "" if rate is None else f"{round(rate * seeds)}/{seeds}"
        shown.append([group, seeds, mean, center, ci, steps, seconds, solved])
    return columns, shown


def write_results_csv(path: str | Path, columns: list[str], rows: list[list]) -> Path:
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row])
    return path


def _csv_cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return round(value, 4) if isinstance(value, float) else value


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def versions() -> str:
    import torch

    try:
        pgrl_version = importlib.metadata.version("pgrl")
    except importlib.metadata.PackageNotFoundError:
        pgrl_version = "unknown"
    return f"pgrl {pgrl_version}, torch {torch.__version__}, Python {platform.python_version()}"


def build_report(
    run_dirs: list[str | Path],
    out: str | Path,
    threshold: float | None = None,
    command: str | None = None,
    title: str | None = None,
    extra_sections: list | None = None,
    failures: list[str] | None = None,
) -> Path:
    """Write OUT/report.html, OUT/results.csv, OUT/returns.png and OUT/diagnostics.png from run folders.

    ``threshold`` None means the env spec's reward_threshold.  ``failures`` (one line per failed run)
    and ``extra_sections`` (``pgrl.report_html.Section``) are added to the page.  Returns report.html.
    """
    from pgrl.report_html import Section, write_report_html
    from pgrl.report_plots import plot_diagnostics, plot_returns

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(run_dirs)
    env_id = runs[0].env_id
    if threshold is None:
        threshold = default_threshold(env_id)
    groups = group_runs(runs)
    columns, rows, caption = results_table(groups, threshold)
    write_results_csv(out / "results.csv", columns, rows)
    images = [plot_returns(groups, out / "returns.png", env_id, threshold)]
    diagnostics = plot_diagnostics(groups, out / "diagnostics.png", env_id)
    setup = (
        f"command: {command or ' '.join(sys.argv)}\n"
        f"machine: {machine_description()}\n"
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}\n"
        f"versions: {versions()}\n"
        f"environment: {env_id}; {len(runs)} run(s) in {len(groups)} group(s)"
    )
    sections = [
        Section("Setup", text=setup),
        Section("Results", text="The same table (4 decimals) is in results.csv.",
                tables=[display_table(rows, threshold)], captions=[caption]),
        Section("Learning curves", text="Training return (mean of the last 100 episodes) against env steps and "
                "training seconds: mean across seeds with a 95% bootstrap band over the range every seed reaches "
                "(faint lines: single seeds).", images=images),
    ]
    if diagnostics is not None:
        sections.append(Section("Diagnostics", text="Per-update statistics over training (mean across seeds, "
                                "95% bootstrap band); entropy is minus loss/entropy.", images=[diagnostics]))
    sections.extend(extra_sections or [])
    if failures:
        sections.append(Section("Failed runs", text="\n".join(failures)))
    listing = "\n".join(f"{run.group}  seed {run.seed}: {_relative(run.path, out)}" for run in runs)
    sections.append(Section("Run folders", text=listing))
    return write_report_html(out / "report.html", title or f"pgrl comparison on {env_id}", sections)


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
