"""Hyperparameters: validated, frozen config models, presets, and schedules.

Each algorithm file declares its config as a subclass of ``AlgoConfig`` with Stable-Baselines3's
names, so rl-zoo hyperparameters paste in unchanged.  Values arrive from four layers, later ones
winning: the preset for (algorithm, env id) in ``presets/<algo>.yaml``, a YAML config file,
``--set key=value`` pairs, and keyword arguments of the Python API.  pydantic validates the merged
dict; its first complaint becomes one ``ConfigError`` sentence naming the key and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from pgrl.errors import ConfigError

# -- schedules ---------------------------------------------------------------------------------

ScheduleFn = Callable[[float], float]


def parse_schedule(value: Any) -> float | str | ScheduleFn:
    """Accept a number >= 0, "lin_<start>" (linear decay to 0 over training), a callable of
    progress_remaining, or a saved callable ({"sampled": [...]}, see ``schedule_to_json``)."""
    if isinstance(value, bool):
        raise ValueError("a schedule is a number, 'lin_<number>' or a callable, not a boolean")
    if callable(value):
        return value
    if isinstance(value, dict) and set(value) == {"sampled"}:
        return SampledSchedule(value["sampled"])
    if isinstance(value, int | float):
        if not value >= 0:
            raise ValueError(f"a schedule's value must be 0 or more, got {value}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        start = text[4:] if text.startswith("lin_") else text
        try:
            number = float(start)
        except ValueError:
            raise ValueError(f"'{value}' is not a number or 'lin_<number>' schedule") from None
        if not number >= 0:
            raise ValueError(f"a schedule's value must be 0 or more, got '{value}'")
        return text if text.startswith("lin_") else number
    raise ValueError(f"a schedule is a number, 'lin_<number>' or a callable, not {type(value).__name__}")


def parse_positive_schedule(value: Any) -> float | str | ScheduleFn:
    """A schedule whose start is above 0 (clip ranges)."""
    value = parse_schedule(value)
    start = value if isinstance(value, float) else float(value[4:]) if isinstance(value, str) else None
    if start is not None and start <= 0:
        raise ValueError(f"must be above 0, got {start:g}")
    return value


class SampledSchedule:
    """A callable schedule as it is saved: its values at progress_remaining 1, 0.99, ..., 0,
    linearly interpolated (models are data, not code: a function is not stored)."""

    POINTS = 101

    def __init__(self, values):
        values = [float(v) for v in values]
        if len(values) < 2 or not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError("a sampled schedule needs at least 2 finite values >= 0")
        self.values = values

    def __call__(self, progress_remaining: float) -> float:
        position = (1.0 - min(max(progress_remaining, 0.0), 1.0)) * (len(self.values) - 1)
        low = min(int(position), len(self.values) - 2)
        weight = position - low
        return self.values[low] * (1.0 - weight) + self.values[low + 1] * weight


Schedule = Annotated[Any, BeforeValidator(parse_schedule)]
PositiveSchedule = Annotated[Any, BeforeValidator(parse_positive_schedule)]


def parse_budget(value: Any) -> Any:
    """Step budgets as YAML writes them: 1e5, 1.0e5 (a string to PyYAML), !!float 1e5."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Budget = Annotated[int | None, BeforeValidator(parse_budget)]


def make_schedule(value: float | str | ScheduleFn) -> ScheduleFn:
    """A function of progress_remaining (1 at the start of training, 0 at the end)."""
    if callable(value):
        return value
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return lambda progress_remaining: start * progress_remaining
    constant = float(value)
    return lambda progress_remaining: constant


def schedule_to_json(value: float | str | ScheduleFn) -> float | str | dict[str, list[float]]:
    """Schedules as JSON: a callable is saved as its values at 101 evenly spaced points of
    progress_remaining (1 to 0), which load back as a SampledSchedule that interpolates them."""
    if not callable(value):
        return value
    if isinstance(value, SampledSchedule):  # a loaded schedule saves as itself
        return {"sampled": list(value.values)}
    points = SampledSchedule.POINTS
    return {"sampled": [float(value(1.0 - i / (points - 1))) for i in range(points)]}


# -- config models -----------------------------------------------------------------------------

Activation = Literal["tanh", "relu", "elu", "gelu"]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


POLICIES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy", "MlpLstmPolicy", "CnnLstmPolicy", "MultiInputLstmPolicy")
#: what each policy name sets in policy_kwargs unless the user sets it (SB3's and sb3-contrib's defaults)
POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    "MlpPolicy": {},
    "CnnPolicy": {"features_extractor_class": "NatureCNN", "net_arch": []},
    "MultiInputPolicy": {"features_extractor_class": "CombinedExtractor"},
}
for _name in ("Mlp", "Cnn", "MultiInput"):
    POLICY_DEFAULTS[f"{_name}LstmPolicy"] = POLICY_DEFAULTS[f"{_name}Policy"]
#: policy_kwargs only LSTM policies take (sb3-contrib's names)
LSTM_KWARGS = ("lstm_hidden_size", "n_lstm_layers", "shared_lstm", "enable_critic_lstm", "lstm_kwargs")


def is_recurrent(policy: str) -> bool:
    """True for the LSTM policy names (MlpLstmPolicy, CnnLstmPolicy, MultiInputLstmPolicy)."""
    return policy.endswith("LstmPolicy")


def class_path(value: Any) -> Any:
    """A class as "module:QualName" (how configs save a features_extractor_class); others as they are."""
    if isinstance(value, type):
        return f"{value.__module__}:{value.__qualname__}"
    return value


class PolicyKwargs(Frozen):
    """Network shape. net_arch is a list of widths or {pi: [...], vf: [...]} for separate networks.

    features_extractor_class: "FlattenExtractor", "NatureCNN", "CombinedExtractor", a
    "module:Class" path or a class (saved as its path); None: the policy name's default.
    """

    net_arch: (
        list[Annotated[int, Field(gt=0)]] | dict[Literal["pi", "vf"], list[Annotated[int, Field(gt=0)]]]
    ) = [
        64,
        64,
    ]
    activation_fn: Activation = "tanh"
    shared: bool = False
    log_std_init: float = 0.0
    ortho_init: bool = True
    use_sde: bool = Field(False, description="generalized state-dependent exploration (Box actions)")
    features_extractor_class: str | type | None = None
    features_extractor_kwargs: dict[str, Any] = {}
    share_features_extractor: bool = Field(True, description="actor and critic share the features extractor")
    normalize_images: bool = Field(True, description="scale uint8 images by 1/255")
    lstm_hidden_size: int = Field(256, gt=0, description="LSTM policies: units of each LSTM layer")
    n_lstm_layers: int = Field(1, gt=0, description="LSTM policies: stacked LSTM layers")
    shared_lstm: bool = Field(False, description="LSTM policies: the critic reads the actor's LSTM (no gradient)")
    enable_critic_lstm: bool = Field(True, description="LSTM policies: the critic has an LSTM of its own")
    lstm_kwargs: dict[str, Any] = Field({}, description="LSTM policies: more torch.nn.LSTM arguments")

    @model_validator(mode="before")
    @classmethod
    def _torch_activation_classes(cls, data: Any) -> Any:
        """SB3 passes activation_fn as a torch class (nn.ReLU); pgrl names it ("relu")."""
        if isinstance(data, dict) and isinstance(data.get("activation_fn"), type):
            name = data["activation_fn"].__name__.lower()
            data = {**data, "activation_fn": name}
        return data


def _on_off(value: Any) -> Any:
    """YAML reads a bare on / off (``--set fast_path=off``) as a boolean: take it as the word."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


class AlgoConfig(Frozen):
    """Hyperparameters every algorithm has."""

    n_envs: int = Field(8, gt=0, description="environments stepped together")
    n_timesteps: Budget = Field(None, gt=0, description="default training budget (the preset's)")
    learning_rate: Schedule = 3e-4
    gamma: float = Field(0.99, ge=0.0, le=1.0)
    ent_coef: float = Field(0.0, ge=0.0)
    max_grad_norm: float | None = Field(0.5, gt=0.0)
    optimizer: Literal["adam", "rmsprop"] = "adam"
    normalize: bool = Field(False, description="running mean/std normalization of observations")
    normalize_reward: bool = Field(False, description="scale rewards by the running std of the return")
    clip_obs: float = Field(10.0, gt=0.0)
    clip_reward: float | None = Field(
        None, gt=0.0, description="clip the rewards the learner sees to [-c, c] (after normalize_reward's "
        "scaling, which alone clips at 10 like SB3's VecNormalize); episode returns stay unclipped",
    )
    use_sde: bool = Field(False, description="gSDE exploration for Box actions (SB3's use_sde)")
    sde_sample_freq: int = Field(-1, ge=-1, description="new gSDE noise every k steps (-1: once per rollout)")
    policy: Literal[POLICIES] = Field("MlpPolicy", description="MlpPolicy, CnnPolicy (images) or MultiInputPolicy "
                                      "(Dict observations); their Lstm variants (MlpLstmPolicy, ...) add memory")
    policy_kwargs: PolicyKwargs = PolicyKwargs()
    fast_path: Annotated[Literal["auto", "on", "off"], BeforeValidator(_on_off)] = Field(
        "auto", description="compiled kernels for small MLP policies on a CPU (pgrl.fast): auto where they apply "
        "and pay, on to insist, off for the torch path")

    @model_validator(mode="after")
    def _lstm_kwargs_need_an_lstm(self):
        fields = PolicyKwargs.model_fields  # saved configs hold every field: compare with the defaults
        given = [key for key in LSTM_KWARGS if getattr(self.policy_kwargs, key) != fields[key].default]
        if given and not is_recurrent(self.policy):
            raise ValueError(f"policy_kwargs {', '.join(given)} set the LSTM of an LSTM policy, but the policy is "
                             f"{self.policy}; use policy={self.policy.replace('Policy', 'LstmPolicy')}")
        if self.policy_kwargs.shared_lstm and self.policy_kwargs.enable_critic_lstm:
            raise ValueError("policy_kwargs shared_lstm=true and enable_critic_lstm=true both give the critic a "
                             "memory; set enable_critic_lstm=false to share the actor's LSTM")
        return self

    #: actor and critic take steps with optimizers of their own (VPG, TRPO, ActorCritic): each then
    #: gets its own features extractor by default, since one extractor cannot follow both
    separate_optimizers: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _policy_defaults(cls, data: Any) -> Any:
        """The policy name's defaults (CnnPolicy: NatureCNN, no hidden layers) under the user's policy_kwargs."""
        if isinstance(data, dict) and data.get("policy") in POLICY_DEFAULTS:
            kwargs = data.get("policy_kwargs") or {}
            if isinstance(kwargs, PolicyKwargs):
                kwargs = kwargs.model_dump(exclude_unset=True)
            if isinstance(kwargs, dict):
                defaults = dict(POLICY_DEFAULTS[data["policy"]])
                if cls.separate_optimizers:
                    defaults["share_features_extractor"] = False
                data = {**data, "policy_kwargs": {**defaults, **kwargs}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _use_sde_reaches_the_policy(cls, data: Any) -> Any:
        """rl-zoo files put use_sde beside the other hyperparameters; the policy reads policy_kwargs."""
        if isinstance(data, dict) and data.get("use_sde") is True:
            kwargs = data.get("policy_kwargs") or {}
            if isinstance(kwargs, PolicyKwargs):
                kwargs = kwargs.model_dump()
            if isinstance(kwargs, dict):
                data = {**data, "policy_kwargs": {**kwargs, "use_sde": True}}
        return data

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="python")
        for key, value in data.items():
            if callable(value):
                data[key] = schedule_to_json(value)
        kwargs = data["policy_kwargs"]
        kwargs["features_extractor_class"] = class_path(kwargs["features_extractor_class"])
        return data


def describe_validation_error(exc: ValidationError, algo: str, fields: list[str]) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in err["loc"] if not isinstance(part, int) or len(err["loc"]) > 1)
    key = str(err["loc"][0]) if err["loc"] else "?"
    if err["type"] == "extra_forbidden":
        return f"unknown hyperparameter '{loc}' for {algo}; known ones are: {', '.join(sorted(fields))}"
    if err["type"] == "value_error" and not err["loc"]:  # a whole-config rule's own sentence
        return f"{algo}: {err['msg'].removeprefix('Value error, ')}"
    got = err.get("input")
    message = err["msg"][0].lower() + err["msg"][1:]
    return f"hyperparameter '{loc or key}' for {algo} is invalid: {message} (got {got!r})"


def build_config(cls: type[AlgoConfig], algo: str, values: dict[str, Any]) -> AlgoConfig:
    """Validate ``values`` against ``cls``; raise ConfigError with one sentence on failure."""
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, algo, list(cls.model_fields))) from None


# -- presets and config files ------------------------------------------------------------------


def _read_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {source} is not valid YAML{where}; fix its syntax") from None


def preset_names(algo: str, env_id: str) -> list[str]:
    return sorted(_preset_variants(algo, env_id))


def _preset_table(algo: str) -> dict[str, dict[str, dict[str, Any]]]:
    path = resources.files("pgrl") / "presets" / f"{algo}.yaml"
    if not path.is_file():
        return {}
    return _read_yaml(path.read_text(), str(path)) or {}


#: Preset tables' fallback entries: an env id with no entry of its own uses its family's.
PRESET_FAMILIES = ("atari",)


def env_family(env_id: str) -> str | None:
    """The preset family of an env id: "atari" for ale-py's games, None for the others."""
    from pgrl.envs.atari import is_atari_id, looks_like_atari_id

    return "atari" if looks_like_atari_id(env_id) or is_atari_id(env_id) else None


def _preset_variants(algo: str, env_id: str) -> dict[str, Any]:
    """PRESET_NAME -> hyperparameters for env_id: its own entry, else its family's (e.g. "atari")."""
    table = _preset_table(algo)
    if env_id in table:
        return table[env_id] or {}
    family = env_family(env_id)
    return (table.get(family) or {}) if family is not None else {}


def load_preset(algo: str, env_id: str, name: str = "default") -> dict[str, Any]:
    """The tuned hyperparameters for (algo, env_id); {} when pgrl has none and name is 'default'.

    An id without an entry of its own takes its family's: every Atari game the "atari" entry.
    ``none`` is no preset at all: the config classes' own defaults (what an rl-zoo file starts from)."""
    if name == "none":
        return {}
    variants = _preset_variants(algo, env_id)
    if name in variants:
        return dict(variants[name] or {})
    if name == "default":
        return {}
    known = ", ".join(sorted(variants)) or "none"
    raise ConfigError(f"no preset '{name}' for {algo} on {env_id}; known presets: {known}")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of hyperparameters."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the path") from None
    except OSError as exc:
        raise ConfigError(
            f"config file {path} cannot be read ({exc.strerror}); check its permissions"
        ) from None
    data = _read_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of hyperparameters, not a {type(data).__name__}"
        )
    return data


def parse_overrides(pairs: list[str], flag: str = "--set") -> dict[str, Any]:
    """["a=1", "policy_kwargs.net_arch=[64,64]"] -> nested dict; values are parsed as YAML.

    ``flag`` names the option in error messages (--set, --env-kwargs)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects key=value, got '{pair}'")
        value = _read_yaml(raw, f"{flag} {key}") if raw.strip() else ""
        if (
            isinstance(value, float)
            and not math.isfinite(value)
            and raw.strip().lower() not in ("inf", ".inf")
        ):
            raise ConfigError(f"{flag} {key} got a non-finite number '{raw}'")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{flag} {key} conflicts with an earlier {flag} of '{part}'")
        node[parts[-1]] = value
    return out


def merge_preset(preset: dict[str, Any], hparams: dict[str, Any]) -> dict[str, Any]:
    """``hparams`` over ``preset``.  When ``hparams`` choose a policy of the other kind, the preset's
    policy_kwargs that only its kind has are left out: a feed-forward preset's ``shared`` (one MLP
    trunk, e.g. A2C's CartPole preset) for an LSTM policy, an LSTM preset's LSTM_KWARGS for a
    feed-forward one (e.g. MlpPolicy on CartPoleNoVel-v1's `fast` preset, for comparison)."""
    if "policy" not in hparams:
        return merge(preset, hparams)
    wanted, preset_policy = is_recurrent(str(hparams["policy"])), is_recurrent(str(preset.get("policy", "")))
    if wanted != preset_policy:
        drop = ("shared",) if wanted else LSTM_KWARGS
        kwargs = {k: v for k, v in (preset.get("policy_kwargs") or {}).items() if k not in drop}
        preset = {**preset, "policy_kwargs": kwargs}
    return merge(preset, hparams)


def merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge dicts, later layers winning (policy_kwargs merges key by key)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
    return out
