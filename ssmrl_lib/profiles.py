"""Profiles: named settings (smoke, quick, full) that a notebook's parameters resolve against.

smoke: seconds per notebook, for CI. quick: the default, meaningful on a 2-core CPU.
full: the paper's settings, for a GPU.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ssmrl_lib.errors import SsmrlError, check_choice

PROFILES = ("smoke", "quick", "full")

Settings = TypeVar("Settings")


def resolve(profiles: dict[str, Settings], profile: str, **overrides: Any) -> Settings:
    """The settings of ``profile`` with every non-None override applied.

    Unknown profiles and unknown override names fail with the valid choices.
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
        elif expected is float and isinstance(value, int):
            given[name] = float(value)
        elif not isinstance(value, expected):
            raise SsmrlError(
                f"parameter {name!r} must be {expected.__name__}, got {value!r}"
            )
    return dataclasses.replace(base, **given)
