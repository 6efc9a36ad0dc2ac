"""rl-zoo (rl-baselines3-zoo) hyperparameter files, read as they are by ``pgrl train --config``.

An rl-zoo file maps env ids (and the ``atari`` / ``default`` fallbacks) to hyperparameters in
Stable-Baselines3's names, with a few rl-zoo spellings that pgrl translates here:

- ``policy_kwargs: "dict(net_arch=dict(pi=[64], vf=[64]), activation_fn=nn.ReLU)"`` is parsed with
  ``ast`` (literals, ``dict(...)`` and the ``nn.ReLU`` / ``nn.Tanh`` / ``nn.ELU`` / ``nn.GELU`` names only;
  nothing is evaluated);
- ``normalize: true`` is SB3's VecNormalize (observations and rewards), a dict of its kwargs
  (``norm_obs``, ``norm_reward``, ``clip_obs``, ``clip_reward``) or a string of one;
- ``frame_stack`` and ``env_wrapper: AtariWrapper`` are what pgrl's make_env already does for Atari ids;
  ``env_kwargs`` goes to ``gym.make``; ``use_rms_prop`` picks A2C's optimizer;
- SB3's defaults where pgrl's differ: one env (``n_envs: 1``), RecurrentPPO's 128-step rollouts for
  LSTM policies, and a PPO batch_size above the rollout meaning the whole rollout.

A key pgrl cannot honour is dropped with one sentence naming the key and the env (``ZooEntry.notes``),
never a crash; values pgrl rejects still raise ConfigError when the config is built.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgrl.config import POLICIES, PolicyKwargs, env_family, is_recurrent
from pgrl.errors import ConfigError

#: the entries an env id falls back to, in order, when the file has none of its own
FALLBACKS = ("atari", "default")
#: torch.nn activation classes rl-zoo names -> pgrl's activation names
ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "ELU": "elu", "GELU": "gelu"}
ATARI_WRAPPER = "stable_baselines3.common.atari_wrappers.AtariWrapper"
#: rl-zoo keys that are not hyperparameters of the algorithm (handled here, one by one)
ZOO_KEYS = ("policy_kwargs", "normalize", "normalize_kwargs", "frame_stack", "env_wrapper", "env_kwargs",
            "use_rms_prop", "n_timesteps", "policy")


class ZooWarning(UserWarning):
    """An rl-zoo key pgrl leaves out (one sentence naming the key and the env)."""


class UnsupportedValue(ValueError):
    """A part of a policy_kwargs string that is not a literal pgrl can read (its text is the message)."""


@dataclass
class ZooEntry:
    """One env's rl-zoo hyperparameters in pgrl's terms."""

    env_id: str
    key: str  #: the file's entry used: the env id, "atari" or "default"
    hparams: dict[str, Any]
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    env_wrappers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  #: one sentence per key pgrl left out


def is_zoo_file(data: dict[str, Any], config_fields: set[str] | list[str]) -> bool:
    """True when ``data`` reads as an rl-zoo file: every value a mapping, no key a hyperparameter."""
    return bool(data) and all(isinstance(v, dict | None) for v in data.values()) and not set(data) & set(config_fields)


def select_entry(data: dict[str, Any], env_id: str, source: str = "the config file") -> tuple[str, dict[str, Any]]:
    """(key, entry) for env_id: its own entry, else ``atari`` for Atari ids, else ``default``."""
    if env_id in data:
        return env_id, dict(data[env_id] or {})
    for key in FALLBACKS:
        if key in data and (key != "atari" or env_family(env_id) == "atari"):
            return key, dict(data[key] or {})
    raise ConfigError(f"{source} has no entry for {env_id} and no 'default' entry; add one or pick an env it lists")


def parse_policy_kwargs(text: str, env_id: str) -> tuple[dict[str, Any], list[str]]:
    """rl-zoo's ``"dict(...)"`` string -> (kwargs pgrl takes, notes on the ones it left out); no eval."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ConfigError(f"policy_kwargs for {env_id} is not a dict(...) expression: {text!r}") from None
    if isinstance(tree, ast.Dict):
        items = [(_literal(k), v) for k, v in zip(tree.keys, tree.values, strict=True)]
    elif isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "dict" and not tree.args:
        items = [(kw.arg, kw.value) for kw in tree.keywords]
    else:
        raise ConfigError(f"policy_kwargs for {env_id} must be dict(...) or a mapping, got {text!r}")
    kwargs, notes = {}, []
    for key, node in items:
        try:
            kwargs[key] = _literal(node)
        except UnsupportedValue as exc:
            notes.append(f"policy_kwargs {key}={exc} for {env_id}: pgrl cannot build it, so it is left out")
    return kwargs, notes


def _literal(node: ast.AST) -> Any:
    """A literal, list, tuple, dict(...) or an nn activation name; anything else raises UnsupportedValue."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
    if name in ACTIVATIONS:
        return ACTIVATIONS[name]
    raise UnsupportedValue(ast.unparse(node))


def _mapping(value: Any, what: str, env_id: str) -> dict[str, Any]:
    """A dict, or a string holding a Python/YAML literal dict (rl-zoo writes both)."""
    if isinstance(value, str):
        try:
            value = _literal(ast.parse(value.strip(), mode="eval").body)
        except (SyntaxError, UnsupportedValue):
            raise ConfigError(f"{what} for {env_id} must be a mapping, got {value!r}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} for {env_id} must be a mapping, got {value!r}")
    return value


def translate(algo: str, env_id: str, data: dict[str, Any], config_fields: set[str] | list[str],
              source: str = "the config file") -> ZooEntry:
    """The entry of an rl-zoo file for env_id, in pgrl's names; what pgrl lacks goes to ``notes``."""
    key, raw = select_entry(data, env_id, source)
    entry = ZooEntry(env_id, key, {})
    hp, notes = entry.hparams, entry.notes
    fields = set(config_fields)
    atari = env_family(env_id) == "atari"

    policy = raw.pop("policy", None)
    if policy is not None:
        if policy in POLICIES:
            hp["policy"] = policy
        else:
            notes.append(f"policy {policy!r} for {env_id}: pgrl has {', '.join(POLICIES)}, so the default is used")
    if "n_timesteps" in raw:
        hp["n_timesteps"] = raw.pop("n_timesteps")
    _translate_policy_kwargs(raw.pop("policy_kwargs", None), env_id, hp, notes)
    _translate_normalize(raw.pop("normalize", None), raw.pop("normalize_kwargs", None), env_id, hp, notes)
    _translate_wrappers(raw.pop("env_wrapper", None), raw.pop("frame_stack", None), env_id, atari, entry)
    env_kwargs = raw.pop("env_kwargs", None)
    if env_kwargs:
        entry.env_kwargs = _mapping(env_kwargs, "env_kwargs", env_id)
    if "use_rms_prop" in raw:
        use = raw.pop("use_rms_prop")
        if "optimizer" in fields:
            hp["optimizer"] = "rmsprop" if use else "adam"
    for name, value in raw.items():
        if name in fields:
            hp[name] = value
        else:
            notes.append(f"{name} for {env_id}: pgrl's {algo} has no such setting, so it is left out")

    # SB3's defaults where pgrl's differ
    hp.setdefault("n_envs", 1)
    if is_recurrent(str(hp.get("policy", ""))) and "n_steps" in fields:
        hp.setdefault("n_steps", 128)  # RecurrentPPO's defaults
        hp.setdefault("batch_size", 128)
    if "batch_size" in fields and "n_steps" in fields:  # minibatches of a rollout (PPO, TRPO's critic)
        rollout = int(hp.get("n_steps", 2048)) * int(hp["n_envs"])
        if int(hp.get("batch_size", 64)) > rollout:  # SB3 slices the whole rollout as one minibatch
            hp["batch_size"] = rollout
    return entry


def _translate_policy_kwargs(value: Any, env_id: str, hp: dict[str, Any], notes: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, str):
        kwargs, more = parse_policy_kwargs(value, env_id)
        notes.extend(more)
    else:
        kwargs = _mapping(value, "policy_kwargs", env_id)
    known = set(PolicyKwargs.model_fields)
    for name in list(kwargs):
        if name not in known:
            notes.append(f"policy_kwargs {name} for {env_id}: pgrl's policies have no such setting, so it is "
                         "left out")
            del kwargs[name]
    if kwargs:
        hp["policy_kwargs"] = kwargs


def _translate_normalize(value: Any, extra: Any, env_id: str, hp: dict[str, Any], notes: list[str]) -> None:
    """SB3's VecNormalize settings -> normalize / normalize_reward / clip_obs / clip_reward."""
    if value is None or value is False:
        return
    kwargs = {} if value is True else _mapping(value, "normalize", env_id)
    if extra:
        kwargs = {**kwargs, **_mapping(extra, "normalize_kwargs", env_id)}
    hp["normalize"] = bool(kwargs.pop("norm_obs", True))
    hp["normalize_reward"] = bool(kwargs.pop("norm_reward", True))
    for name in ("clip_obs", "clip_reward"):
        if name in kwargs:
            hp[name] = kwargs.pop(name)
    for name in kwargs:
        notes.append(f"normalize {name} for {env_id}: pgrl's normalization has no such setting, so it is left out")


def _translate_wrappers(value: Any, frame_stack: Any, env_id: str, atari: bool, entry: ZooEntry) -> None:
    """Atari ids: AtariWrapper + 4 frames is pgrl's own preprocessing; other wrappers by import path."""
    notes = entry.notes
    if frame_stack is not None and not (atari and int(frame_stack) == 4):
        notes.append(f"frame_stack {frame_stack} for {env_id}: pgrl stacks frames (4) only for Atari ids, so it "
                     "is left out")
    if value is None:
        return
    for item in value if isinstance(value, list) else [value]:
        path, kwargs = (next(iter(item.items())) if isinstance(item, dict) else (item, None))
        if path == ATARI_WRAPPER:
            if not atari:
                notes.append(f"env_wrapper AtariWrapper for {env_id}: it is not an Atari id, so it is left out")
            elif kwargs and kwargs.get("terminal_on_life_loss") is False:
                notes.append(f"env_wrapper AtariWrapper terminal_on_life_loss=False for {env_id}: pgrl's Atari "
                             "preprocessing always ends the learner's episode on a lost life")
            elif kwargs:
                notes.append(f"env_wrapper AtariWrapper {kwargs} for {env_id}: pgrl's Atari preprocessing has fixed "
                             "settings, so these are left out")
            continue
        module, _, name = str(path).rpartition(".")
        if kwargs:
            notes.append(f"env_wrapper {path} with arguments for {env_id}: pgrl's --env-wrapper takes no arguments, "
                         "so it is left out")
        elif module and _importable(module):
            entry.env_wrappers.append(f"{module}:{name}")
        else:
            notes.append(f"env_wrapper {path} for {env_id}: its module is not installed, so it is left out")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def rl_zoo_hyperparams_dir() -> Path | None:
    """rl_zoo3's hyperparams/ folder when the package is installed (found without importing it)."""
    try:
        spec = importlib.util.find_spec("rl_zoo3")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "hyperparams"
    return folder if folder.is_dir() else None


#: rl-zoo's file for each pgrl algorithm it has entries for (ppo_lstm: RecurrentPPO, pgrl's PPO with an LSTM policy)
ZOO_FILES = {"ppo": "ppo", "a2c": "a2c", "trpo": "trpo", "ppo_lstm": "ppo"}


def env_installed(env_id: str) -> bool:
    """Whether env_id is registered and gym.make builds it here (MuJoCo -v2 ids need mujoco-py, say)."""
    import warnings

    import gymnasium as gym

    from pgrl.envs.make import check_env_id
    from pgrl.errors import PGRLError

    try:
        check_env_id(env_id)
        with warnings.catch_warnings():  # "-v4 is out of date" and the like: not the question here
            warnings.simplefilter("ignore")
            gym.make(env_id).close()
    except (PGRLError, Exception):  # noqa: BLE001 - any failure to make the env means "not installed" here
        return False
    return True


@dataclass
class SurveyRow:
    """What became of one entry of an rl-zoo file."""

    file: str
    env_id: str
    status: str  #: "not installed", "builds", "builds with notes" or "fails"
    detail: list[str] = field(default_factory=list)  #: the notes, or the one ConfigError sentence


def survey(file_stem: str, folder: Path | None = None, build=None) -> list[SurveyRow]:
    """Every env entry of rl-zoo's ``hyperparams/<file_stem>.yml``: translated, then ``build(algo, env_id,
    entry)`` (default: validate the config), ConfigError recorded.  Fallback entries (atari, default)
    are surveyed on ALE/Pong-v5 and CartPole-v1."""
    import warnings

    import yaml

    from pgrl.algos import ALGORITHMS
    from pgrl.config import build_config

    folder = folder or rl_zoo_hyperparams_dir()
    if folder is None:
        raise ConfigError("rl_zoo3 is not installed; pip install --no-deps rl_zoo3 brings its hyperparams/ files")
    algo = ZOO_FILES[file_stem]
    cls = ALGORITHMS[algo]
    data = yaml.safe_load((folder / f"{file_stem}.yml").read_text())
    rows = []
    for key in data:
        env_id = {"atari": "ALE/Pong-v5", "default": "CartPole-v1"}.get(key, key)
        if not env_installed(env_id):
            rows.append(SurveyRow(file_stem, key, "not installed"))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                entry = translate(algo, env_id, {key: data[key]}, cls.config_class.model_fields)
                if build is None:
                    build_config(cls.config_class, algo, entry.hparams)
                else:
                    build(algo, env_id, entry)
        except ConfigError as exc:
            rows.append(SurveyRow(file_stem, key, "fails", [str(exc)]))
            continue
        rows.append(SurveyRow(file_stem, key, "builds with notes" if entry.notes else "builds", entry.notes))
    return rows
