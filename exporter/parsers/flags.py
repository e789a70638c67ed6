"""mailcow's yes/no fields, read the same way wherever they are stored or shown."""

from __future__ import annotations

from typing import Any


def is_set(value: Any) -> bool:
    """mailcow's flags arrive as 1/0, "1"/"0" or true/false."""
    return str(value) in ("1", "True", "true")
