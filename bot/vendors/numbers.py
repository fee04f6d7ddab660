"""Numbers in vendor answers, read without inventing any: the pure readers every vendor's parser shares.

Contract: each reader takes any JSON value and answers a number, or None when the value does not say
one ("not said", never 0): null, booleans, NaN and infinities, negative numbers, non-numeric strings and
anything else are None. A numeric string reads as the number it writes (`"12"` as 12, `" 12 "` too).

* `count`: a non-negative whole number (`12`, `"12"`, `12.0`, `"12.0"`); 12.5 is None.
* `percent`: a 0-100 value in percent units (`85`, `"85"`, `"85%"`): a warmup score or reputation.
* `fraction`: a rate as a 0-1 fraction; a string ending in `%` is a percent (`"8%"` → 0.08). Percent →
  fraction is exact decimal arithmetic (`"1.1%"` → 0.011, not 0.011000000000000001).

Where vendors really read numbers differently, that is a parameter, not a copy:

* `digits_only`: a string must be written in plain decimal digits (`"12"`, `"12.0"`, `"1.6"`, `"95 %"`),
  Smartlead's reading (docs/vendors.md §8.6), under which `"1e3"`, `"+5"` or `"1_000"` say nothing.
  Otherwise a string is anything Python's `int()`/`float()` reads (`"1e3"` is 1000).
* `fraction(bare=...)`: what a number WITHOUT a `%` sign is: a fraction (Leadterra's `replyRate` 0.08) or
  a percent (Smartlead's rate fields, where 1.6 means 1.6 %). `capped`: None above 1 (100 %), or not.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any, Final, Literal

__all__ = ["count", "fraction", "percent"]

#: `digits_only` forms: a count (an optional all-zero fraction), and a number with an optional `%`
_DIGITS_COUNT: Final = re.compile(r"\s*([0-9]+)(?:\.0*)?\s*")
_DIGITS_NUMBER: Final = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(%?)\s*")


def count(value: Any, *, digits_only: bool = False) -> int | None:
    """A count from a number or a numeric string (`12`, `"12"`, `12.0`); None for null, booleans, negative or
    fractional numbers and anything else (`digits_only`: see the module docstring)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        if digits_only:
            match = _DIGITS_COUNT.fullmatch(value)
            return int(match[1]) if match else None
        text = value.strip()
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _reading(value: Any, digits_only: bool) -> tuple[Decimal, bool] | None:
    """(the finite non-negative number `value` writes, whether a string wrote it with a `%` sign); None
    when it writes none."""
    if isinstance(value, bool) or value is None:
        return None
    signed = False
    if isinstance(value, str):
        if digits_only:
            match = _DIGITS_NUMBER.fullmatch(value)
            return (Decimal(match[1]), bool(match[2])) if match else None
        text = value.strip()
        signed = text.endswith("%")
        try:
            value = float(text.removesuffix("%").strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return Decimal(str(value)), signed
    return None


def percent(value: Any, *, digits_only: bool = False) -> float | None:
    """A 0-100 value in percent units from a number, a numeric string or a percent string (`85`, `"85"`,
    `"85%"`); None above 100 or when not a number."""
    reading = _reading(value, digits_only)
    return None if reading is None or reading[0] > 100 else float(reading[0])


def fraction(value: Any, *, bare: Literal["fraction", "percent"] = "fraction", capped: bool = True,
             digits_only: bool = False) -> float | None:
    """A rate as a fraction: `"8%"` → 0.08; a number without a `%` sign is a fraction (`0.08`, `"0.08"`) or,
    with `bare="percent"`, a percent (1.6 → 0.016). None when not a number, or above 1 when `capped`."""
    reading = _reading(value, digits_only)
    if reading is None:
        return None
    number, signed = reading
    if signed or bare == "percent":
        number /= 100
    return None if capped and number > 1 else float(number)
