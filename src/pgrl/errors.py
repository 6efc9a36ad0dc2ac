"""Errors a user can cause. Each carries one sentence that names the bad input and the fix.

The CLI prints the sentence and exits with status 2; library users catch ``PGRLError`` (or the
built-in base it also derives from) instead of parsing tracebacks.
"""

from __future__ import annotations


class PGRLError(Exception):
    """Base class of every error pgrl raises for bad input."""


class ConfigError(PGRLError, ValueError):
    """A hyperparameter, preset or config file is unknown, ill-typed or out of range."""


class EnvError(PGRLError, ValueError):
    """An environment id is unknown or its spaces cannot be handled."""


class CheckpointError(PGRLError, ValueError):
    """A saved model or checkpoint is missing, corrupt, or belongs to another setup."""


class TrainingError(PGRLError, RuntimeError):
    """Training cannot go on (for example a NaN in the loss)."""
