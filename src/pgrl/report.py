"""Plots from run folders (metrics.csv)."""

from __future__ import annotations

import csv
import math
from pathlib import Path


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.csv"
    if not metrics_path.exists():
        return None
    data = read_metrics(metrics_path)
    steps, returns = data.get("step", []), data.get("rollout/ep_return_mean", [])
    seconds = data.get("time/elapsed", [])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for ax, x, label in ((axes[0], steps, "environment steps"), (axes[1], seconds, "training seconds")):
        ax.plot(x, returns, color="#1f77b4", linewidth=1.8)
        ax.set_xlabel(label)
        ax.set_ylabel("mean episode return (last 100)")
        ax.grid(alpha=0.3)
    fig.suptitle(title or run_dir.name)
    out = run_dir / "learning_curve.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
