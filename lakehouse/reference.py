"""The reference tables shipped in lakehouse/data (counties, districts, schools, colleges, programs, ...).

They are public directories, not partner data: the synthetic generator draws from them and the gold
dimensions take institution, program and place names from them.
"""

from __future__ import annotations

import csv
from importlib import resources


def read_table(name: str) -> list[dict[str, str]]:
    """Rows of lakehouse/data/<name>.csv as dicts (header names as keys)."""
    text = resources.files("lakehouse").joinpath("data", f"{name}.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))
