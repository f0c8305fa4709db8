"""Shipped reference tables (lakehouse/data/*.csv) and the weighted draws built on them.

Tables (written for this project from general knowledge; districts and schools are invented):
first_names (sex, group, name, weight), surnames (group, name, weight), nicknames (name, nickname),
accents (name, accented), counties (county_code, county_name, weight), cities (county_code, city,
zip_low, zip_high, weight), districts (county_code, district_code, name, city, weight), schools
(county_code, district_code, school_code, level E/M/H, name), colleges (segment CCC/CSU/UC, code, name,
county_code, calendar, weight), programs (cip, top_code, title, bachelor_degree, associate_degree, weight),
naics (naics, title, teen_weight, adult_weight, ba_weight, wage_factor) and streets (name).

The tables are small (a few thousand rows in all), so they are read on the driver once and inlined into
Spark plans as constant arrays: a draw is an O(1) array index, never a join or a map scan, whatever the
number of people. A weighted draw within a group (first names by sex and ethnic group, cities by county,
schools by district and level) uses a slot array: each row owns a number of slots proportional to its
weight, and a uniform number picks a slot of the group's segment.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

from lakehouse.reference import read_table
from lakehouse.synth.draws import double_array, int_array, string_array

NAME_GROUPS = ("HISPANIC", "WHITE", "BLACK", "ASIAN", "FILIPINO", "PACIFIC")
"""Surname groups; first names use the first five (PACIFIC people draw WHITE-list first names)."""

FIRST_NAME_GROUPS = NAME_GROUPS[:5]
SEXES = ("F", "M")
SEGMENTS = ("CCC", "CSU", "UC")
SCHOOL_LEVELS = ("E", "M", "H")
WAGE_PROFILES = ("teen", "adult", "ba")


class Table:
    """A reference table whose columns become constant arrays indexed by a row-number Column."""

    def __init__(self, rows: Sequence[dict[str, str]]) -> None:
        if not rows:
            raise ValueError("a reference table needs at least one row")
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def values(self, column: str) -> list[str]:
        return [row[column] for row in self.rows]

    def at(self, column: str, index: Column) -> Column:
        """The string value of `column` in row `index` (0-based int Column); null for a null index."""
        return F.get(string_array(self.values(column)), index)

    def int_at(self, column: str, index: Column) -> Column:
        """The int value of `column` in row `index`."""
        return F.get(int_array([int(v) for v in self.values(column)]), index)

    def double_at(self, column: str, index: Column) -> Column:
        """The double value of `column` in row `index`."""
        return F.get(double_array([float(v) for v in self.values(column)]), index)


@dataclass(frozen=True)
class WeightedGroups:
    """Weighted draw of a row number within one of several groups, by Walker's alias method.

    Group g owns positions offsets[g] .. offsets[g] + lengths[g] - 1 of the three aligned arrays: a uniform
    picks a position, its fractional remainder keeps the position's own row with probability `keep` or
    takes its `alias` otherwise. Every draw is O(1) and the arrays hold one entry per row, so the constants
    inlined into a plan stay small.
    """

    rows: tuple[int, ...]
    keep: tuple[float, ...]
    alias: tuple[int, ...]
    offsets: tuple[int, ...]
    lengths: tuple[int, ...]

    @classmethod
    def build(cls, groups: Sequence[int], weights: Sequence[float], n_groups: int) -> WeightedGroups:
        """Alias tables for rows that belong to `groups[i]` with weight `weights[i]` (non-positive: never drawn)."""
        rows: list[int] = []
        keep: list[float] = []
        alias: list[int] = []
        offsets: list[int] = []
        lengths: list[int] = []
        for group in range(n_groups):
            members = [(i, w) for i, (g, w) in enumerate(zip(groups, weights, strict=True)) if g == group and w > 0]
            offsets.append(len(rows))
            lengths.append(len(members))
            if not members:
                continue
            total = sum(w for _, w in members)
            scaled = [w * len(members) / total for _, w in members]
            group_keep = [1.0] * len(members)
            group_alias = list(range(len(members)))
            small = [i for i, p in enumerate(scaled) if p < 1.0]
            large = [i for i, p in enumerate(scaled) if p >= 1.0]
            while small and large:
                low, high = small.pop(), large.pop()
                group_keep[low], group_alias[low] = scaled[low], high
                scaled[high] -= 1.0 - scaled[low]
                (small if scaled[high] < 1.0 else large).append(high)
            rows.extend(row for row, _ in members)
            keep.extend(group_keep)
            alias.extend(members[a][0] for a in group_alias)
        if not rows:
            raise ValueError("a weighted draw needs at least one row with a positive weight")
        return cls(tuple(rows), tuple(keep), tuple(alias), tuple(offsets), tuple(lengths))

    def pick(self, u: Column, group: Column | int = 0) -> Column:
        """Row number (int) drawn by uniform `u` within `group`; null when the group has no rows."""
        group_col = group if isinstance(group, Column) else F.lit(group)
        length = F.get(int_array(list(self.lengths)), group_col)
        scaled = u * length
        index = F.floor(scaled).cast("int")
        position = F.get(int_array(list(self.offsets)), group_col) + index
        kept = (scaled - index) < F.get(double_array(list(self.keep)), position)
        row = F.when(kept, F.get(int_array(list(self.rows)), position)).otherwise(
            F.get(int_array(list(self.alias)), position)
        )
        return F.when(length > 0, row)

    def modulo(self, n_rows: int) -> WeightedGroups:
        """The same draw over a table listed several times (once per group): row numbers modulo `n_rows`."""
        return WeightedGroups(
            tuple(r % n_rows for r in self.rows),
            self.keep,
            tuple(a % n_rows for a in self.alias),
            self.offsets,
            self.lengths,
        )


@dataclass(frozen=True)
class Reference:
    """Every reference table and weighted draw the generator uses."""

    first_names: Table
    first_name_choice: WeightedGroups  # group: sex index * 5 + first-name group index
    first_name_alternative: tuple[int, ...]  # a different name of the same sex and group, per row
    nickname_offsets: tuple[int, ...]  # per first-name row, into nicknames
    nickname_counts: tuple[int, ...]
    nicknames: tuple[str, ...]
    first_name_accents: tuple[str, ...]  # accented spelling per first-name row, "" when none
    surnames: Table
    surname_choice: WeightedGroups  # group: name group index
    surname_accents: tuple[str, ...]
    counties: Table
    county_choice: WeightedGroups
    cities: Table
    city_choice: WeightedGroups  # group: county index
    districts: Table
    district_choice: WeightedGroups  # group: county index
    schools: Table
    school_choice: WeightedGroups  # group: district index * 3 + level index
    colleges: Table
    college_choice: WeightedGroups  # group: segment index (statewide)
    local_college_choice: WeightedGroups  # group: segment index * n_counties + county index
    programs: Table
    program_choice: WeightedGroups
    naics: Table
    naics_choice: WeightedGroups  # group: wage profile index (teen, adult, ba)
    streets: Table

    def first_name(self, index: Column) -> Column:
        return self.first_names.at("name", index)

    def surname(self, index: Column) -> Column:
        return self.surnames.at("name", index)

    def first_name_accent(self, index: Column) -> Column:
        """Accented spelling of first-name row `index`, null when it has none."""
        return F.nullif(F.get(string_array(list(self.first_name_accents)), index), F.lit(""))

    def surname_accent(self, index: Column) -> Column:
        """Accented spelling of surname row `index`, null when it has none."""
        return F.nullif(F.get(string_array(list(self.surname_accents)), index), F.lit(""))

    def nickname(self, index: Column, u: Column) -> Column:
        """A nickname of first-name row `index` drawn by `u`; null when the name has none."""
        count = F.get(int_array(list(self.nickname_counts)), index)
        offset = F.get(int_array(list(self.nickname_offsets)), index)
        chosen = F.get(string_array(list(self.nicknames)), offset + F.floor(u * count).cast("int"))
        return F.when(count > 0, chosen)

    def alternative_first_name(self, index: Column) -> Column:
        """Row of a different first name of the same sex and group as row `index`."""
        return F.get(int_array(list(self.first_name_alternative)), index)


@functools.lru_cache(maxsize=1)
def load_reference() -> Reference:
    """Read and index every shipped table (cached: the files never change within a process)."""
    first = Table(read_table("first_names"))
    surnames = Table(read_table("surnames"))
    counties = Table(read_table("counties"))
    cities = Table(read_table("cities"))
    districts = Table(read_table("districts"))
    schools = Table(read_table("schools"))
    colleges = Table(read_table("colleges"))
    programs = Table(read_table("programs"))
    naics = Table(read_table("naics"))
    streets = Table(read_table("streets"))
    accents = {row["name"]: row["accented"] for row in read_table("accents")}
    nickname_map: dict[str, list[str]] = {}
    for row in read_table("nicknames"):
        nickname_map.setdefault(row["name"], []).append(row["nickname"])

    county_index = {code: i for i, code in enumerate(counties.values("county_code"))}
    district_index = {code: i for i, code in enumerate(districts.values("district_code"))}
    n_counties = len(counties)

    first_groups = [
        SEXES.index(r["sex"]) * len(FIRST_NAME_GROUPS) + FIRST_NAME_GROUPS.index(r["group"]) for r in first.rows
    ]
    alternative = []
    for i, group in enumerate(first_groups):
        same = [j for j, g in enumerate(first_groups) if g == group and first.rows[j]["name"] != first.rows[i]["name"]]
        alternative.append(same[i % len(same)])
    nick_offsets: list[int] = []
    nick_counts: list[int] = []
    nick_values: list[str] = []
    for name in first.values("name"):
        nick_offsets.append(len(nick_values))
        nick_counts.append(len(nickname_map.get(name, [])))
        nick_values.extend(nickname_map.get(name, []))

    def weights(table: Table, column: str = "weight") -> list[float]:
        return [float(v) for v in table.values(column)]

    def by_county(table: Table) -> list[int]:
        return [county_index[v] for v in table.values("county_code")]

    def segment_of(row: dict[str, str]) -> int:
        return SEGMENTS.index(row["segment"])

    return Reference(
        first_names=first,
        first_name_choice=WeightedGroups.build(first_groups, weights(first), 2 * len(FIRST_NAME_GROUPS)),
        first_name_alternative=tuple(alternative),
        nickname_offsets=tuple(nick_offsets),
        nickname_counts=tuple(nick_counts),
        nicknames=tuple(nick_values) or ("",),
        first_name_accents=tuple(accents.get(n, "") for n in first.values("name")),
        surnames=surnames,
        surname_choice=WeightedGroups.build(
            [NAME_GROUPS.index(g) for g in surnames.values("group")], weights(surnames), len(NAME_GROUPS)
        ),
        surname_accents=tuple(accents.get(n, "") for n in surnames.values("name")),
        counties=counties,
        county_choice=WeightedGroups.build([0] * n_counties, weights(counties), 1),
        cities=cities,
        city_choice=WeightedGroups.build(by_county(cities), weights(cities), n_counties),
        districts=districts,
        district_choice=WeightedGroups.build(by_county(districts), weights(districts), n_counties),
        schools=schools,
        school_choice=WeightedGroups.build(
            [
                district_index[r["district_code"]] * len(SCHOOL_LEVELS) + SCHOOL_LEVELS.index(r["level"])
                for r in schools.rows
            ],
            [1.0] * len(schools),
            len(districts) * len(SCHOOL_LEVELS),
        ),
        colleges=colleges,
        college_choice=WeightedGroups.build([segment_of(r) for r in colleges.rows], weights(colleges), len(SEGMENTS)),
        local_college_choice=WeightedGroups.build(
            [segment_of(r) * n_counties + county_index[r["county_code"]] for r in colleges.rows],
            weights(colleges),
            len(SEGMENTS) * n_counties,
        ),
        programs=programs,
        program_choice=WeightedGroups.build([0] * len(programs), weights(programs), 1),
        naics=naics,
        naics_choice=WeightedGroups.build(
            [0] * len(naics) + [1] * len(naics) + [2] * len(naics),
            weights(naics, "teen_weight") + weights(naics, "adult_weight") + weights(naics, "ba_weight"),
            len(WAGE_PROFILES),
        ).modulo(len(naics)),
        streets=streets,
    )
