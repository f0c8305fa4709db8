"""Typed gold and public definitions from conf/gold.yaml, checked against the partner feed contracts.

`load_gold_config` reads the file into frozen dataclasses (unknown keys, missing keys and wrong types stop
the run with a `ConfigError` naming the file and the key path), then checks values the types cannot
express: valid months and days, known partners, award levels for every allowed award type, and so on.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.config import ConfigError, Settings, conf_dir, from_mapping, read_yaml

GOLD_CONF_FILE = "gold.yaml"

RESOLVED_ATTRIBUTES = ("birth_year", "gender", "race_ethnicity")
"""Person attributes dim_person resolves across source records."""

GROUP_COLUMNS = ("gender", "race_ethnicity", "sed")
"""Person-level columns a student-group dimension of a mart can partition by."""

MEDI_CAL_PROGRAM = "MEDI_CAL"
"""`program` of Medi-Cal spans in fact_program_participation (DSS spans carry their own program codes)."""

_TERM_PATTERN = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class PersonRules:
    """How dim_person resolves attributes and who counts as socioeconomically disadvantaged."""

    source_priority: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sed_programs: tuple[str, ...] = ()

    def priority(self, attribute: str) -> tuple[str, ...]:
        """Partners in tie-break order for `attribute` (empty: no partner preferred)."""
        return self.source_priority.get(attribute, ())


@dataclass(frozen=True)
class TermDefinition:
    """Start date and academic year of one term suffix of a postsecondary term_code."""

    start_month: int
    start_day: int
    academic_year_offset: int = 0


@dataclass(frozen=True)
class PostsecondaryRules:
    """Term codes and award levels of the postsecondary facts."""

    terms: dict[str, TermDefinition]
    award_levels: dict[str, str]


@dataclass(frozen=True)
class PathwaysRules:
    """Cohorts and outcome windows of mart_student_pathways."""

    graduate_completion_types: tuple[str, ...]
    award_level_order: tuple[str, ...]
    graduation_month: int = 6
    graduation_day: int = 15
    enrollment_window_months: int = 12
    ever_enrolled_window_months: int = 96
    completion_window_months: int = 96

    def level_rank(self, level: str) -> int:
        """Position of `level` in award_level_order (0 = lowest)."""
        return self.award_level_order.index(level)


@dataclass(frozen=True)
class EarningsRules:
    """Which years after an award are measured, and the price index that restates wages in constant dollars."""

    years_after_award: tuple[int, ...]
    constant_dollar_year: int
    cpi: dict[str, float]

    def cpi_by_year(self) -> dict[int, float]:
        """The CPI series with integer years (the YAML keys are checked to be years)."""
        return {int(year): value for year, value in self.cpi.items()}

    def deflators(self) -> dict[int, float]:
        """Calendar year -> factor that restates that year's dollars in constant_dollar_year dollars."""
        series = self.cpi_by_year()
        base = series[self.constant_dollar_year]
        return {year: base / value for year, value in series.items()}


@dataclass(frozen=True)
class GroupDimension:
    """One student-group dimension: group_dimension `name` takes its group_value from person column `column`."""

    name: str
    column: str


@dataclass(frozen=True)
class StudentGroups:
    """Group dimensions and the labels of the all-students, unknown and statewide rows of every mart."""

    dimensions: tuple[GroupDimension, ...]
    all_dimension: str = "all"
    all_value: str = "ALL"
    unknown_value: str = "UNKNOWN"
    statewide_county_code: str = "00"

    def dimension_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)


@dataclass(frozen=True)
class SuppressionRules:
    """Suppression behaviour beyond the threshold (settings.public.min_cell_size)."""

    suppress_zeros: bool = True
    max_iterations: int = 25


@dataclass(frozen=True)
class GoldConfig:
    """Everything conf/gold.yaml defines."""

    person: PersonRules
    postsecondary: PostsecondaryRules
    pathways: PathwaysRules
    earnings: EarningsRules
    student_groups: StudentGroups
    suppression: SuppressionRules = field(default_factory=SuppressionRules)


def gold_conf_path() -> Path:
    """conf/gold.yaml of the checkout (or of $LAKEHOUSE_CONF_DIR)."""
    return conf_dir() / GOLD_CONF_FILE


def load_gold_config(path: Path | None = None, settings: Settings | None = None) -> GoldConfig:
    """conf/gold.yaml as a checked `GoldConfig`; with `settings`, also checked against the feed contracts."""
    source_path = path or gold_conf_path()
    source = str(source_path)
    config = from_mapping(GoldConfig, read_yaml(source_path), source)
    check_gold_config(config, source)
    if settings is not None:
        check_against_feeds(config, settings, source)
    return config


def _check_month_day(month: int, day: int, source: str, key: str) -> None:
    try:
        dt.date(2001, month, day)  # a non-leap year: every date it accepts exists every year
    except ValueError as exc:
        raise ConfigError(f"{source}: key '{key}' is not a valid month and day ({month}-{day}): {exc}") from exc


def check_gold_config(config: GoldConfig, source: str) -> None:
    """Values the types cannot check: attribute names, dates, positive windows, group columns."""
    for attribute in config.person.source_priority:
        if attribute not in RESOLVED_ATTRIBUTES:
            raise ConfigError(
                f"{source}: unknown key 'person.source_priority.{attribute}' "
                f"(known keys: {', '.join(RESOLVED_ATTRIBUTES)})"
            )
    if not config.postsecondary.terms:
        raise ConfigError(f"{source}: key 'postsecondary.terms' must name at least one term")
    for term, definition in config.postsecondary.terms.items():
        if not _TERM_PATTERN.match(term):
            raise ConfigError(f"{source}: key 'postsecondary.terms.{term}' must be two upper-case letters")
        _check_month_day(definition.start_month, definition.start_day, source, f"postsecondary.terms.{term}")
    _check_pathways(config, source)
    _check_earnings(config.earnings, source)
    groups = config.student_groups
    names = [d.name for d in groups.dimensions]
    if len(set(names)) != len(names) or groups.all_dimension in names:
        raise ConfigError(
            f"{source}: key 'student_groups.dimensions' must name each dimension once, "
            f"and none may be called {groups.all_dimension!r}"
        )
    for i, dimension in enumerate(groups.dimensions):
        if dimension.column not in GROUP_COLUMNS:
            raise ConfigError(
                f"{source}: key 'student_groups.dimensions[{i}].column' is {dimension.column!r}; "
                f"known columns: {', '.join(GROUP_COLUMNS)}"
            )
    if config.suppression.max_iterations < 1:
        raise ConfigError(f"{source}: key 'suppression.max_iterations' must be at least 1")


def _check_pathways(config: GoldConfig, source: str) -> None:
    rules = config.pathways
    if not rules.graduate_completion_types:
        raise ConfigError(f"{source}: key 'pathways.graduate_completion_types' must not be empty")
    _check_month_day(rules.graduation_month, rules.graduation_day, source, "pathways.graduation_month")
    windows = ("enrollment_window_months", "ever_enrolled_window_months", "completion_window_months")
    for window in windows:
        if getattr(rules, window) < 1:
            raise ConfigError(f"{source}: key 'pathways.{window}' must be at least 1")
    if rules.ever_enrolled_window_months < rules.enrollment_window_months:
        raise ConfigError(
            f"{source}: key 'pathways.ever_enrolled_window_months' must be at least enrollment_window_months"
        )
    levels = set(config.postsecondary.award_levels.values())
    order = rules.award_level_order
    if len(set(order)) != len(order) or not levels <= set(order):
        raise ConfigError(
            f"{source}: key 'pathways.award_level_order' must list every level of postsecondary.award_levels "
            f"once ({', '.join(sorted(levels))}), got {', '.join(order)}"
        )


def _check_earnings(rules: EarningsRules, source: str) -> None:
    years = rules.years_after_award
    if not years or len(set(years)) != len(years) or min(years) < 1:
        raise ConfigError(f"{source}: key 'earnings.years_after_award' must list distinct years of at least 1")
    for year, value in rules.cpi.items():
        if not re.fullmatch(r"\d{4}", year):
            raise ConfigError(f"{source}: key 'earnings.cpi.{year}' must be a 4-digit calendar year")
        if value <= 0:
            raise ConfigError(f"{source}: key 'earnings.cpi.{year}' must be positive, got {value}")
    if str(rules.constant_dollar_year) not in rules.cpi:
        raise ConfigError(
            f"{source}: key 'earnings.constant_dollar_year' is {rules.constant_dollar_year}, "
            "a year earnings.cpi does not list"
        )


def _allowed(settings: Settings, partner: str, feed: str, column: str) -> tuple[str, ...]:
    return settings.feed(partner, feed).column(column).allowed


def check_against_feeds(config: GoldConfig, settings: Settings, source: str) -> None:
    """Partners, completion types, programs and award types named in gold.yaml exist in the feed contracts."""
    partners = {p.name for p in settings.partners}
    for attribute, priority in config.person.source_priority.items():
        for i, partner in enumerate(priority):
            if partner not in partners:
                raise ConfigError(
                    f"{source}: key 'person.source_priority.{attribute}[{i}]' is {partner!r}, "
                    f"not a partner (known: {', '.join(sorted(partners))})"
                )
    programs = {MEDI_CAL_PROGRAM, *_allowed(settings, "dss", "program_participation", "program")}
    for i, program in enumerate(config.person.sed_programs):
        if program not in programs:
            raise ConfigError(
                f"{source}: key 'person.sed_programs[{i}]' is {program!r} (known: {', '.join(sorted(programs))})"
            )
    completions = _allowed(settings, "cde", "k12_graduation", "completion_type")
    for i, completion in enumerate(config.pathways.graduate_completion_types):
        if completions and completion not in completions:
            raise ConfigError(
                f"{source}: key 'pathways.graduate_completion_types[{i}]' is {completion!r}, "
                f"not an allowed completion_type of cde_k12_graduation ({', '.join(completions)})"
            )
    for partner, feed, column in (
        ("cccco", "ccc_awards", "award_type"),
        ("csu", "csu_degrees", "degree_type"),
        ("ucop", "uc_degrees", "degree_type"),
    ):
        for value in _allowed(settings, partner, feed, column):
            if value not in config.postsecondary.award_levels:
                raise ConfigError(
                    f"{source}: key 'postsecondary.award_levels' has no level for {column} {value!r} "
                    f"allowed by feed {partner}_{feed}"
                )
