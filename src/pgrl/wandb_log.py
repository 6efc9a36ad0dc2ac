"""Weights & Biases for `pgrl train --wandb` (the ``pgrl[wandb]`` extra).

``WandbCallback`` is a row callback: it logs each metrics row the run writes to metrics.csv and
TensorBoard (the same keys, at the same env step), so W&B holds what the run folder holds.  The run
starts with the run's config.json as its config, and ``finish`` adds the run folder's PNGs
(learning_curve.png) and summary.json before closing it.

The run is offline (files under RUN/wandb/, uploadable later with ``wandb sync``) when asked
(``--wandb-offline``), when ``WANDB_MODE=offline`` or when no API key is found (neither
``WANDB_API_KEY`` nor a ``wandb login`` entry in ~/.netrc): nothing then touches the network.
Code saving, git probing and system statistics are off either way.
"""

from __future__ import annotations

import json
import math
import netrc
import os
from pathlib import Path
from typing import Any

from pgrl.callbacks import BaseCallback
from pgrl.errors import ConfigError

DEFAULT_PROJECT = "pgrl"


def has_api_key() -> bool:
    """WANDB_API_KEY, or the netrc entry ``wandb login`` writes (api.wandb.ai or WANDB_BASE_URL's host)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(offline: bool) -> str:
    """"offline" unless a key is there and neither --wandb-offline nor WANDB_MODE=offline asks otherwise."""
    if offline or os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun") or not has_api_key():
        return "offline"
    return "online"


def _wandb():
    try:
        import wandb
    except ImportError:
        raise ConfigError("--wandb needs the wandb package; install it with pip install 'pgrl[wandb]'") from None
    return wandb


class WandbCallback(BaseCallback):
    """Logs every metrics row to a W&B run kept in ``run_dir``/wandb; ``finish`` adds PNGs and closes it."""

    needs_steps = False

    def __init__(self, run_dir: str | Path, project: str | None = None, offline: bool = False,
                 name: str | None = None):
        super().__init__()
        wandb = _wandb()
        self.run_dir = Path(run_dir)
        config_path = self.run_dir / "config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        self.mode = wandb_mode(offline)
        os.environ.setdefault("WANDB_SILENT", "true")
        settings = wandb.Settings(silent=True, save_code=False, disable_git=True, x_disable_stats=True,
                                  x_disable_meta=True, console="off")
        self.run = wandb.init(project=project or DEFAULT_PROJECT, name=name or self.run_dir.name,
                              dir=str(self.run_dir), mode=self.mode, config=config, settings=settings,
                              reinit="create_new")

    def on_row(self, row: dict[str, float]) -> bool:
        """Every column of the row metrics.csv gets (NaN too: a column W&B lacks would be a lost metric)."""
        self.run.log({key: value for key, value in row.items() if _is_number(value, finite=False)},
                     step=int(self.model.num_timesteps))
        return True

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        """Log the run folder's PNGs and the summary, then close the W&B run."""
        wandb = _wandb()
        images = {f"figures/{path.stem}": wandb.Image(str(path)) for path in sorted(self.run_dir.glob("*.png"))}
        if images:
            self.run.log(images)
        for key, value in (summary or {}).items():
            if _is_number(value) or isinstance(value, str):
                self.run.summary[key] = value
        self.run.finish()
        if wandb.run is None:  # no other W&B run in this process: stop W&B's service, which completes the
            wandb.teardown()   # run's .wandb file (finish alone can return before it is written)

    @property
    def files_dir(self) -> Path:
        """The W&B run's own folder (RUN/wandb/offline-run-... or run-...)."""
        return Path(self.run.dir).parent


def _is_number(value: Any, finite: bool = True) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and (not finite or math.isfinite(value))
