"""One exception type for bad input, so the CLI can print one clear line and exit non-zero."""

from __future__ import annotations

from collections.abc import Iterable


class SsmrlError(ValueError):
    """Bad input from the user: unknown name, corrupt file, diverged training."""


def check_choice(what: str, value: object, choices: Iterable[object]) -> None:
    """Raise ``SsmrlError`` naming ``value`` and the valid ``choices`` unless it is one of them."""
    choices = list(choices)
    if value not in choices:
        valid = ", ".join(str(c) for c in choices)
        raise SsmrlError(f"unknown {what} {value!r}; valid choices: {valid}")
