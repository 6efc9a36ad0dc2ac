"""One small interface over the progress bar (tqdm), metrics.csv and TensorBoard."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from tqdm import tqdm


class RunLogger:
    """Writes one row of metrics per call to ``log``; every sink is optional."""

    def __init__(
        self,
        log_dir: str | Path | None,
        total_timesteps: int,
        progress_bar: bool = False,
        tensorboard: bool = True,
        initial_step: int = 0,
        purge_step: int | None = None,
    ):
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._csv_file = None
        self._csv: csv.DictWriter | None = None
        self._tb = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step drops events at or after it (written after the checkpoint a run resumes from)
                self._tb = SummaryWriter(str(self.log_dir), purge_step=purge_step)
        self._bar = (
            tqdm(total=total_timesteps, initial=0, unit="step", dynamic_ncols=True, leave=True)
            if progress_bar
            else None
        )
        self._start = initial_step
        self._shown = 0

    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **metrics}
        if self.log_dir is not None:
            if self._csv is None:
                path = self.log_dir / "metrics.csv"
                fieldnames = _existing_header(path) or list(row)  # a resumed run keeps the columns
                self._csv_file = path.open("a", newline="")
                self._csv = csv.DictWriter(self._csv_file, fieldnames=fieldnames, extrasaction="ignore")
                if path.stat().st_size == 0:
                    self._csv.writeheader()
            new = [key for key in row if key not in self._csv.fieldnames]
            if new:  # a column that appears later (a callback's logger.record): widen the file once
                self._widen(new)
            self._csv.writerow(
                {k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            )
            self._csv_file.flush()
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)
        if self._bar is not None:
            done = min(step - self._start, self._bar.total)
            self._bar.update(done - self._shown)
            self._shown = done
            ret = metrics.get("rollout/ep_return_mean", float("nan"))
            self._bar.set_postfix(
                {
                    "steps/s": f"{metrics.get('time/sps', 0):,.0f}",
                    "return": "-" if math.isnan(ret) else f"{ret:.1f}",
                },
                refresh=False,
            )

    def _widen(self, new: list[str]) -> None:
        """Rewrite metrics.csv (atomically) with ``new`` columns added; earlier rows leave them empty."""
        path = self.log_dir / "metrics.csv"
        self._csv_file.close()
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        fieldnames = list(self._csv.fieldnames) + new
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        self._csv_file = path.open("a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=fieldnames, extrasaction="ignore")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._csv_file is not None:
            self._csv_file.close()
        if self._tb is not None:
            self._tb.close()


def _existing_header(path: Path) -> list[str] | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="") as handle:
        return next(csv.reader(handle), None)


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the header and the complete rows of metrics.csv up to ``last_step``; rewrite atomically.

    Used when a run resumes from a checkpoint: rows written after it will be written again.
    A row cut short by a crash (wrong number of fields) is dropped too.
    """
    if not path.exists():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    header, kept = rows[0], []
    for row in rows[1:]:
        if len(row) != len(header):
            continue
        try:
            step = int(float(row[0]))
        except ValueError:
            continue
        if step <= last_step and (not kept or step > int(float(kept[-1][0]))):
            kept.append(row)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(kept)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
