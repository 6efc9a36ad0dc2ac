"""Figures of a comparison report: mean curves across seeds with 95% bootstrap bands, one colour per group.

``groups`` maps a label to its ``pgrl.report.RunInfo`` runs (see ``pgrl.report.group_runs``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pgrl.stats import curve_band

RETURN = "rollout/ep_return_mean"
# (column, panel title, transform): entropy is logged as loss/entropy = -entropy
DIAGNOSTICS = [
    ("loss/entropy", "policy entropy", lambda y: -y),
    ("stats/approx_kl", "approx. KL (old || new)", lambda y: y),
    ("stats/explained_var", "explained variance", lambda y: y),
    ("loss/value", "value loss", lambda y: y),
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_band(ax, runs, x_key: str, y_key: str, color, label: str, transform=lambda y: y,
               seeds: bool = False) -> bool:
    """Mean and 95% band over the x range all seeds reach; ``seeds`` adds each seed's full curve, faint."""
    curves = []
    for run in runs:
        x, y = run.metrics.get(x_key), run.metrics.get(y_key)
        if x and y and any(math.isfinite(v) for v in y):
            curves.append((x, transform(np.asarray(y, dtype=float))))
    if not curves:
        return False
    if seeds and len(curves) > 1:
        for x, y in curves:
            ax.plot(x, y, color=color, linewidth=0.6, alpha=0.35)
    grid, mean, low, high = curve_band(curves)
    ax.plot(grid, mean, color=color, linewidth=1.8, label=f"{label} (n={len(curves)})")
    ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
    return True


def plot_returns(groups: dict, out: str | Path, env_id: str, threshold: float | None = None) -> Path:
    """returns.png: training return against env steps (left) and training seconds (right)."""
    plt = _pyplot()
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
    for i, (label, runs) in enumerate(groups.items()):
        for ax, x_key in ((axes[0], "step"), (axes[1], "time/elapsed")):
            _draw_band(ax, runs, x_key, RETURN, colors(i % 10), label, seeds=True)
    for ax, xlabel in ((axes[0], "environment steps"), (axes[1], "training seconds")):
        if threshold is not None:
            ax.axhline(threshold, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training return (mean of last 100 episodes)")
        ax.grid(alpha=0.3)
    axes[0].set_title("sample efficiency")
    axes[1].set_title("wall-clock")
    axes[1].legend(loc="best", fontsize=8)
    fig.suptitle(f"{env_id}: mean across seeds with a 95% bootstrap band (over the range every seed reaches); "
                 "faint lines: single seeds", fontsize=10)
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_diagnostics(groups: dict, out: str | Path, env_id: str) -> Path | None:
    """diagnostics.png: one panel per diagnostic column any run logged; None when none did."""
    present = [d for d in DIAGNOSTICS if any(d[0] in run.metrics for runs in groups.values() for run in runs)]
    if not present:
        return None
    plt = _pyplot()
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.8), constrained_layout=True,
                             squeeze=False)
    for ax, (column, title, transform) in zip(axes[0], present, strict=True):
        for i, (label, runs) in enumerate(groups.items()):
            _draw_band(ax, runs, "step", column, colors(i % 10), label, transform)
        ax.set_title(title)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="best", fontsize=7)
    fig.suptitle(f"{env_id}: training diagnostics, mean across seeds, 95% bootstrap band", fontsize=10)
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
