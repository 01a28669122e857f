"""Profiles: named settings (smoke, quick, full) that a notebook's parameters resolve against.

smoke: seconds per notebook, for CI. quick: the default, meaningful on a 2-core CPU.
full: the paper's settings, for a GPU.

What each setting accepts is declared once, above its settings class, with :func:`allowed`
(e.g. ``@allowed(seeds=POSITIVE, learning_rate=POSITIVE_FINITE, envs=NON_EMPTY)``);
:func:`resolve` checks every value against it, so a bad parameter fails in one line naming the
parameter, the value and what is allowed, before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ssmrl_lib.errors import SsmrlError, check_choice

PROFILES = ("smoke", "quick", "full")

Settings = TypeVar("Settings")


@dataclass(frozen=True)
class Allowed:
    """The values one setting accepts: a number within ``[minimum, maximum]`` (``above``: a
    strict lower bound), finite; for a tuple, ``non_empty`` and ``items`` for each element."""

    what: str
    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    non_empty: bool = False
    items: Allowed | None = None

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, tuple):
            if self.non_empty and not value:
                self._fail(name, value)
            for item in value if self.items else ():
                if not self.items.accepts(item):
                    self._fail(name, value)
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
# Past this, the arrays a setting implies do not fit in memory (a typo such as 10**12 episodes).
MEMORY_LIMIT_BYTES = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# The knobs every recurrent-PPO settings class shares (popgym, meta-RL), for ``allowed(**...)``.
PPO_ALLOWED = {
    "models": NON_EMPTY, "seeds": POSITIVE, "total_steps": POSITIVE, "num_envs": POSITIVE,
    "unroll": POSITIVE, "epochs": POSITIVE, "minibatches": POSITIVE,
    "learning_rate": POSITIVE_FINITE, "gamma": FRACTION, "gae_lambda": FRACTION,
    "clip": POSITIVE_FINITE, "entropy_coef": NON_NEGATIVE_FINITE,
    "value_coef": NON_NEGATIVE_FINITE, "max_grad_norm": POSITIVE_FINITE,
    "encoder": POSITIVE_SIZES, "hidden": POSITIVE, "heads": POSITIVE_SIZES,
    "s5_layers": POSITIVE, "s5_state": POSITIVE, "checkpoint_every": POSITIVE,
}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes that settings imply through ``names`` (e.g. per-episode arrays, ``what``)."""

    names: tuple[str, ...]
    what: str
    bytes: Callable[[Any], float]


# A lower bound on a PPO update's rollout: per environment and step, the observation and each
# layer's hidden state in float32 (gradients and optimizer state come on top).
PPO_ROLLOUT_MEMORY = MemoryEstimate(
    ("num_envs", "unroll", "hidden", "s5_layers"), "rollout states",
    lambda s: 4 * s.num_envs * s.unroll * s.hidden * max(1, s.s5_layers),
)


def allowed(
    memory: tuple[MemoryEstimate, ...] = (), **rules: Allowed
) -> Callable[[type], type]:
    """Class decorator declaring what each setting of a settings dataclass accepts."""

    def declare(cls: type) -> type:
        cls.__allowed__ = (dict(rules), tuple(memory))
        return cls

    return declare


def check_settings(settings: Any) -> None:
    """Check every declared setting of ``settings``; raise ``SsmrlError`` on the first bad one."""
    rules, memory = getattr(type(settings), "__allowed__", ({}, ()))
    names = {f.name for f in dataclasses.fields(settings)}
    for name, rule in rules.items():
        if name not in names:
            raise TypeError(f"{type(settings).__name__} has no setting {name!r} to check")
        rule.check(name, getattr(settings, name))
    for estimate in memory:
        needed = estimate.bytes(settings)
        if needed > MEMORY_LIMIT_BYTES:
            values = ", ".join(f"{n}={getattr(settings, n)!r}" for n in estimate.names)
            raise SsmrlError(
                f"parameters {values} imply {_bytes(needed)} of {estimate.what}; at most "
                f"{_bytes(MEMORY_LIMIT_BYTES)} (this machine's memory) is allowed"
            )


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def resolve(profiles: dict[str, Settings], profile: str, **overrides: Any) -> Settings:
    """The settings of ``profile`` with every non-None override applied and checked.

    Unknown profiles and unknown override names fail with the valid choices; values of the
    wrong type or outside what the settings class declares (:func:`allowed`) fail naming it.
    """
    check_choice("profile", profile, profiles)
    base = profiles[profile]
    names = [f.name for f in dataclasses.fields(base)]
    for name in overrides:
        check_choice("parameter", name, names)
    given = {k: v for k, v in overrides.items() if v is not None}
    for name, value in given.items():
        expected = type(getattr(base, name))
        if expected is tuple and isinstance(value, list | str | int):
            given[name] = tuple(value) if isinstance(value, list) else (value,)
        elif expected is float and isinstance(value, int) and not isinstance(value, bool):
            given[name] = float(value)
        elif not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise SsmrlError(
                f"parameter {name!r} = {value!r}: must be {_type_name(expected)}"
            )
    settings = dataclasses.replace(base, **given)
    check_settings(settings)
    return settings


def _type_name(expected: type) -> str:
    return {int: "an integer", float: "a number (e.g. 0.001 or 1e-3)", str: "a string",
            tuple: "a list", bool: "true or false"}.get(expected, expected.__name__)
