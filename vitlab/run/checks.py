"""What a config check raises, and the small rules the checks share (no torch, so that a params
file is refused without loading it)."""
from __future__ import annotations

import difflib


class ConfigError(ValueError):
    """A one-line message naming the field and what is allowed."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def choice(name, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(name, f"{value!r} is not one of {', '.join(map(str, allowed))}")


def did_you_mean(name: str, allowed) -> str:
    """'; did you mean X?' for the allowed name closest to a misspelt one, else ''."""
    close = difflib.get_close_matches(str(name), list(allowed), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
