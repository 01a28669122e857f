"""Profiles: named settings (smoke, quick, full) that a notebook's parameters resolve against.

smoke: seconds per notebook, for CI. quick: the default, meaningful on a 2-core CPU.
full: the paper's settings, for a GPU.

A settings class holds the configs its runs are built from (a ``PPOConfig`` as ``ppo``, a
``NetworkConfig`` as ``network``) beside its own knobs (``envs``, ``models``, ``seeds``); a
parameter is named by its dotted path (``seeds``, ``ppo.learning_rate``). What each accepts is
declared once, above its settings class, with :func:`allowed` (e.g. ``@allowed(seeds=POSITIVE,
**{"ppo.learning_rate": POSITIVE_FINITE}, models=one_of("model", MODELS))``), and a nested
config's own ``check()`` runs after; :func:`resolve` checks every value against it, so
a bad parameter fails in one line naming the parameter, the value and what is allowed, before
any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ssmrl_lib.errors import SsmrlError, check_choice

PROFILE_NAMES = ("smoke", "quick", "full")

Settings = TypeVar("Settings")


@dataclass(frozen=True)
class Allowed:
    """The values one setting accepts: a number within ``[minimum, maximum]`` (``above``: a
    strict lower bound), finite; for a tuple, ``non_empty``, and ``items`` for each element or
    ``one_of``, (what an element is, the valid elements)."""

    what: str
    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    non_empty: bool = False
    items: Allowed | None = None
    one_of: tuple[str, tuple] | None = None

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, tuple):
            if self.non_empty and not value:
                self._fail(name, value)
            for item in value if self.items else ():
                if not self.items.accepts(item):
                    self._fail(name, value)
            for item in value if self.one_of else ():
                check_choice(self.one_of[0], item, self.one_of[1])
        elif not self.accepts(value):
            self._fail(name, value)

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return (
            math.isfinite(value)
            and (self.minimum is None or value >= self.minimum)
            and (self.above is None or value > self.above)
            and (self.maximum is None or value <= self.maximum)
        )

    def _fail(self, name: str, value: Any) -> None:
        shown = list(value) if isinstance(value, tuple) else value
        raise SsmrlError(f"parameter {name!r} = {shown!r}: must be {self.what}")


POSITIVE = Allowed("a positive integer", minimum=1)
NON_NEGATIVE = Allowed("a non-negative integer", minimum=0)
POSITIVE_FINITE = Allowed("a finite number above 0", above=0)
NON_NEGATIVE_FINITE = Allowed("a finite number, at least 0", minimum=0)
FRACTION = Allowed("a number in [0, 1]", minimum=0, maximum=1)
NON_EMPTY = Allowed("a non-empty list", non_empty=True)
POSITIVE_SIZES = Allowed("a non-empty list of positive integers", non_empty=True,
                         items=POSITIVE)


def one_of(what: str, choices: Any, non_empty: bool = True) -> Allowed:
    """A list of names, each one of ``choices`` (e.g. ``one_of("model", MODELS)``); a wrong one
    fails as ``unknown model 'x'; valid choices: ...``."""
    return Allowed("a non-empty list" if non_empty else "a list", non_empty=non_empty,
                   one_of=(what, tuple(choices)))


# Past this, the arrays a setting implies do not fit in memory (a typo such as 10**12 episodes).
MEMORY_LIMIT_BYTES = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# The knobs every recurrent-PPO settings class shares (popgym, meta-RL), by their dotted names
# in the ``ppo`` (``PPOConfig``) and ``network`` (``NetworkConfig``) it holds.
PPO_ALLOWED = {
    "models": NON_EMPTY, "seeds": POSITIVE, "ppo.total_steps": POSITIVE,
    "ppo.num_envs": POSITIVE, "ppo.unroll": POSITIVE, "ppo.epochs": POSITIVE,
    "ppo.minibatches": POSITIVE, "ppo.learning_rate": POSITIVE_FINITE, "ppo.gamma": FRACTION,
    "ppo.gae_lambda": FRACTION, "ppo.clip": POSITIVE_FINITE,
    "ppo.entropy_coef": NON_NEGATIVE_FINITE, "ppo.value_coef": NON_NEGATIVE_FINITE,
    "ppo.max_grad_norm": POSITIVE_FINITE, "ppo.checkpoint_every": POSITIVE,
    "network.encoder": POSITIVE_SIZES, "network.hidden": POSITIVE,
    "network.heads": POSITIVE_SIZES, "network.s5_layers": POSITIVE, "network.s5_state": POSITIVE,
    "network.head_gain": POSITIVE_FINITE,
}


Config = TypeVar("Config")


def smoke_ppo(paper: Config, *, total_steps: int, num_envs: int, unroll: int) -> Config:
    """A smoke profile's PPO (a ``PPOConfig``): seconds, one epoch of one minibatch at a
    learning rate that moves tiny networks, a checkpoint every 2 updates to exercise resuming."""
    return dataclasses.replace(
        paper, total_steps=total_steps, num_envs=num_envs, unroll=unroll, epochs=1,
        minibatches=1, learning_rate=1e-3, checkpoint_every=2)


def quick_ppo(paper: Config, *, total_steps: int, num_envs: int, unroll: int,
              learning_rate: float, **changes: Any) -> Config:
    """A quick profile's PPO: minutes on a CPU, so 4 epochs of 4 minibatches instead of the
    paper's 30 of 8 (the same samples are not replayed as often), a checkpoint every 4 updates."""
    return dataclasses.replace(
        paper, total_steps=total_steps, num_envs=num_envs, unroll=unroll, epochs=4,
        minibatches=4, learning_rate=learning_rate, checkpoint_every=4, **changes)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes that settings imply through ``names`` (e.g. per-episode arrays, ``what``)."""

    names: tuple[str, ...]
    what: str
    bytes: Callable[[Any], float]


# A lower bound on a PPO update's rollout: per environment and step, the observation and each
# layer's hidden state in float32 (gradients and optimizer state come on top).
PPO_ROLLOUT_MEMORY = MemoryEstimate(
    ("ppo.num_envs", "ppo.unroll", "network.hidden", "network.s5_layers"), "rollout states",
    lambda s: 4 * s.ppo.num_envs * s.ppo.unroll * s.network.hidden * max(1, s.network.s5_layers),
)


@dataclass(frozen=True)
class Declaration:
    """What :func:`allowed` declares about a settings class."""

    rules: dict[str, Allowed]
    memory: tuple[MemoryEstimate, ...] = ()
    fixed: frozenset[str] = frozenset()


def allowed(
    memory: tuple[MemoryEstimate, ...] = (), fixed: tuple[str, ...] = (), **rules: Allowed
) -> Callable[[type], type]:
    """Class decorator declaring what each setting of a settings dataclass accepts.

    Settings of a nested config are named with dots (``**{"ppo.learning_rate": ...}``).
    ``fixed`` names nested fields that are not parameters: the grid sets them (a network's
    ``core`` comes from ``models``) or the method fixes them (A2C's single epoch).
    """

    def declare(cls: type) -> type:
        cls.__allowed__ = Declaration(dict(rules), tuple(memory), frozenset(fixed))
        return cls

    return declare


def _declaration(settings: Any) -> Declaration:
    return getattr(type(settings), "__allowed__", Declaration({}))


def _leaves(config: Any, prefix: str = "") -> dict[str, Any]:
    """Every field of ``config`` that is not itself a config, by dotted name, in field order."""
    leaves: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            leaves.update(_leaves(value, f"{prefix}{field.name}."))
        else:
            leaves[prefix + field.name] = value
    return leaves


def setting_values(settings: Any) -> dict[str, Any]:
    """Every parameter of ``settings`` (a settings dataclass) by dotted name, with its value:
    ``{"envs": (...), "ppo.learning_rate": 5e-05, ...}``, without the fixed ones."""
    fixed = _declaration(settings).fixed
    return {name: value for name, value in _leaves(settings).items() if name not in fixed}


def replace_settings(config: Any, changes: dict[str, Any]) -> Any:
    """``config`` with ``changes`` (dotted names) applied, nested configs replaced in turn."""
    own = {name: value for name, value in changes.items() if "." not in name}
    for inner in {name.split(".", 1)[0] for name in changes if "." in name}:
        nested = {name.split(".", 1)[1]: value for name, value in changes.items()
                  if name.startswith(f"{inner}.")}
        own[inner] = replace_settings(getattr(config, inner), nested)
    return dataclasses.replace(config, **own)


def check_settings(settings: Any) -> None:
    """Check every declared setting of ``settings``; raise ``SsmrlError`` on the first bad one."""
    declaration = _declaration(settings)
    names = _leaves(settings)
    for name in [*declaration.rules, *declaration.fixed]:
        if name not in names:
            raise TypeError(f"{type(settings).__name__} has no setting {name!r} to declare")
    for name, rule in declaration.rules.items():
        rule.check(name, names[name])
    for estimate in declaration.memory:
        needed = estimate.bytes(settings)
        if needed > MEMORY_LIMIT_BYTES:
            values = ", ".join(f"{n}={names[n]!r}" for n in estimate.names)
            raise SsmrlError(
                f"parameters {values} imply {_bytes(needed)} of {estimate.what}; at most "
                f"{_bytes(MEMORY_LIMIT_BYTES)} (this machine's memory) is allowed"
            )
    # a nested config's own consistency check across its fields (PPOConfig.check)
    for field in dataclasses.fields(settings):
        nested = getattr(settings, field.name)
        if dataclasses.is_dataclass(nested) and callable(getattr(nested, "check", None)):
            nested.check()


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def resolve(profiles: dict[str, Settings], profile: str, **overrides: Any) -> Settings:
    """The settings of ``profile`` with every non-None override applied and checked.

    Overrides name settings of nested configs with dots (``**{"ppo.learning_rate": 1e-4}``).
    Unknown profiles and unknown override names fail with the valid choices; values of the
    wrong type or outside what the settings class declares (:func:`allowed`) fail naming it.
    """
    check_choice("profile", profile, profiles)
    base = profiles[profile]
    current = setting_values(base)
    for name in overrides:
        check_choice("parameter", name, current)
    given = {k: v for k, v in overrides.items() if v is not None}
    for name, value in given.items():
        expected = type(current[name])
        if expected is tuple and isinstance(value, list | str | int):
            given[name] = tuple(value) if isinstance(value, list) else (value,)
        elif expected is float and isinstance(value, int) and not isinstance(value, bool):
            given[name] = float(value)
        elif expected is float and isinstance(value, str) and _is_number(value):
            given[name] = float(value)  # YAML 1.1 (papermill's -y) reads 1e-4 as a string
        elif not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise SsmrlError(
                f"parameter {name!r} = {value!r}: must be {_type_name(expected)}"
            )
    settings = replace_settings(base, given)
    check_settings(settings)
    return settings


def split_overrides(overrides: dict[str, Any], prefix: str) -> tuple[dict, dict]:
    """``overrides`` of a notebook running two experiments, split into those without and those
    with ``prefix`` (e.g. ``dmc.``), the latter stripped of it."""
    inside = {k.removeprefix(prefix): v for k, v in overrides.items() if k.startswith(prefix)}
    return {k: v for k, v in overrides.items() if not k.startswith(prefix)}, inside


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _type_name(expected: type) -> str:
    return {int: "an integer", float: "a number (e.g. 0.001 or 1e-3)", str: "a string",
            tuple: "a list", bool: "true or false"}.get(expected, expected.__name__)
