"""An independent audit of a suppressed mart: hidden cells that subtraction within one additive set recovers.

Written apart from lakehouse.public.suppression (plain Python over collected rows) so that the tests check
the Spark implementation against a second reading of the rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

Cell = tuple[Any, str, str, str]  # cohort_year, county or district, group_dimension, group_value


def recoverable_cells(
    rows: Sequence[dict[str, Any]], count: str, dimensions: Sequence[str], statewide: str = "00"
) -> list[tuple[Cell, str]]:
    """Hidden (null) cells of `count` equal to a visible total minus the visible other cells of one of their sets.

    Sets: the groups of each dimension within a cohort and place sum to the all-students cell there;
    counties sum to the statewide cell, districts (rows with a district_code) to their county's cell.
    """
    value: dict[Cell, int | None] = {}
    sets: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(lambda: {"total": None, "members": []})
    for row in rows:
        place = row["district_code"] or row["county_code"]
        cell = (row["cohort_year"], place, row["group_dimension"], row["group_value"])
        value[cell] = row[count]
        cohort, _place, dimension, group = cell
        if row["district_code"] is not None:
            sets["geography", cohort, row["county_code"], dimension, group]["members"].append(cell)
        elif row["county_code"] != statewide:
            sets["geography", cohort, statewide, dimension, group]["members"].append(cell)
        if row["district_code"] is None:
            sets["geography", cohort, row["county_code"], dimension, group]["total"] = cell
        if dimension == "all":
            for name in dimensions:
                sets["group", cohort, place, name]["total"] = cell
        else:
            sets["group", cohort, place, dimension]["members"].append(cell)
    leaks = []
    for key, cells in sets.items():
        everything = [cells["total"], *cells["members"]]
        hidden = [c for c in everything if c is not None and value[c] is None]
        if len(hidden) == 1 and cells["total"] is not None and cells["members"]:
            leaks.append((hidden[0], f"{count} {key}: {len(everything)} cells, one hidden"))
    return leaks
