"""The runners: every way pgrl trains a model, over one row builder (pgrl.loops.rows.RunLog).

- ``trainer.train``: the synchronous loop (collect, update) for every algorithm whose
  ``capabilities.runner`` is "synchronous", with a local or a Ray collector;
- ``hogwild.train``: worker processes on shared parameters (A3C);
- ``pgrl.distributed.a3c``: the asynchronous Ray learner; ``pgrl.batched``: K seeds at once.
"""

from __future__ import annotations

from pgrl.loops.rows import RunLog


def run(algo, total_timesteps: int, **kwargs) -> None:
    """Train ``algo`` with the runner its class declares (``capabilities.runner``)."""
    if algo.capabilities.runner == "hogwild":
        from pgrl.loops.hogwild import train
    else:
        from pgrl.loops.trainer import train
    train(algo, total_timesteps, **kwargs)


__all__ = ["RunLog", "run"]
