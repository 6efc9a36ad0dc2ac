"""Environments: adapters, native batched envs, test envs; importing it registers pgrl's ids."""

from pgrl.envs import pomdp  # noqa: F401  (registers the NoVel ids with Gymnasium)
