"""Phone numbers as the product stores and compares them. Pure functions, no I/O;
used by the settings (separation targets), the recordings and the call actions."""

import re

_NUMBER = re.compile(r"[0-9]+")


def normalize_number(value):
    """`070-1234-5678` -> `07012345678`; anything but digits and hyphens is refused."""
    digits = str(value).strip().replace("-", "")
    if not _NUMBER.fullmatch(digits):
        raise ValueError(f"not a phone number: {value!r}")
    return digits
