"""Comparison levels of a record pair, per identity attribute, as native Spark expressions.

A pair row carries both records' comparison features as l_<feature> and r_<feature> (see `features`). Each
comparison turns them into a level `gamma`: -1 when either side lacks the value (no evidence either way), else
the index of the first level whose condition holds, levels ordered from the strongest agreement to "different".
Names are also compared by Jaro-Winkler similarity, which Spark lacks: `jaro_winkler` calls a JVM function of
the lakehouse's own (infra/jvm/src, Apache Commons Text's arithmetic), once per name and pair
(`with_similarities`), so no pair row leaves the JVM for a Python worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.config import ModelSettings


@dataclass(frozen=True)
class Level:
    """One level of a comparison: its name, the condition on a pair row, and the term-frequency column of an
    exact match (its weight is adjusted by how common the shared value is)."""

    name: str
    condition: Column
    tf_column: str | None = None


@dataclass(frozen=True)
class Comparison:
    """An attribute's comparison: the features it reads (a blocking rule on any of them leaves it out of that
    rule's EM session), when it has no evidence (`is_null`), and its levels, strongest first, "different" last."""

    name: str
    features: tuple[str, ...]
    is_null: Column
    levels: tuple[Level, ...]
    exact_feature: str | None = None
    """The feature whose equality is the first level: its u is then computed exactly from value frequencies."""

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(level.name for level in self.levels)

    def gamma(self) -> Column:
        """The pair's level: -1 (null), else the index of the first level whose condition holds."""
        result = F.when(self.is_null, F.lit(-1))
        for index, level in enumerate(self.levels[:-1]):
            result = result.when(level.condition, F.lit(index))
        return result.otherwise(F.lit(len(self.levels) - 1)).cast("byte")


def gamma_column(comparison: str) -> str:
    return f"gamma_{comparison}"


JARO_WINKLER_FUNCTION = "lakehouse_jaro_winkler"
JARO_WINKLER_CLASS = "org.c2c.lakehouse.udf.JaroWinkler"


def register_functions(spark: SparkSession) -> None:
    """Register the lakehouse's JVM functions in `spark` (their classes come with lakehouse-jvm.jar, which the
    session builder puts on spark.jars). Idempotent: a function already registered is kept."""
    if not spark.catalog.functionExists(JARO_WINKLER_FUNCTION):
        spark.udf.registerJavaFunction(JARO_WINKLER_FUNCTION, JARO_WINKLER_CLASS, T.FloatType())


def jaro_winkler(left: Column, right: Column) -> Column:
    """Jaro-Winkler similarity (0-1, float) of two string columns; null when either side is null. The session
    must have run `register_functions`."""
    return F.call_function(JARO_WINKLER_FUNCTION, left, right)


SIMILARITIES = ("first_name", "last_name")
"""Name features compared by Jaro-Winkler: the pair gets jw_<name>."""


def with_similarities(pairs: DataFrame) -> DataFrame:
    """Add jw_first_name and jw_last_name (Jaro-Winkler of the two records' names)."""
    register_functions(pairs.sparkSession)
    return pairs.withColumns(
        {f"jw_{name}": jaro_winkler(F.col(f"l_{name}"), F.col(f"r_{name}")) for name in SIMILARITIES}
    )


def _l(name: str) -> Column:
    return F.col(f"l_{name}")


def _r(name: str) -> Column:
    return F.col(f"r_{name}")


def _equal(name: str) -> Column:
    return _l(name) == _r(name)


def _either_null(*names: str) -> Column:
    condition = F.lit(False)
    for name in names:
        condition = condition | _l(name).isNull() | _r(name).isNull()
    return condition


def identifier_comparison(name: str) -> Comparison:
    """An HMAC-tokenized identifier (<name>_token, <name>_variant_tokens): exact, one typo, different."""
    token, variants = f"{name}_token", f"{name}_variant_tokens"
    return Comparison(
        name=name,
        exact_feature=token,
        features=(token, variants),
        is_null=_either_null(token),
        levels=(
            Level("exact", _equal(token)),
            Level("one_typo", F.arrays_overlap(_l(variants), _r(variants))),
            Level("different", F.lit(True)),
        ),
    )


def person_comparisons(model: ModelSettings) -> tuple[Comparison, ...]:
    """The comparisons of two person records (docs/linkage.md lists their levels and why)."""
    high, low = F.lit(model.jaro_winkler_high), F.lit(model.jaro_winkler_low)
    # first and last name swapped, on one side possibly with the (swapped) first name cut to its initial
    names_swapped = ((_l("last_name") == _r("first_name")) & (_l("first_name") == _r("last_name"))) | (
        (
            (_l("last_name") == _r("first_name"))
            & (F.length(_l("first_name")) == 1)
            & (_l("first_name") == F.substring(_r("last_name"), 1, 1))
        )
        | (
            (_r("last_name") == _l("first_name"))
            & (F.length(_r("first_name")) == 1)
            & (_r("first_name") == F.substring(_l("last_name"), 1, 1))
        )
    )
    one_is_initial = ((F.length(_l("first_name")) == 1) | (F.length(_r("first_name")) == 1)) & _equal("first_initial")
    same_year, same_month, same_day = _equal("birth_year"), _equal("birth_month"), _equal("birth_day")
    parts_equal = same_year.cast("int") + same_month.cast("int") + same_day.cast("int")
    day_month_swapped = same_year & (_l("birth_month") == _r("birth_day")) & (_l("birth_day") == _r("birth_month"))
    return (
        Comparison(
            name="first_name",
            exact_feature="first_name",
            features=("first_name", "first_name_groups", "first_initial", "full_name_key"),
            is_null=_either_null("first_name"),
            levels=(
                Level("exact", _equal("first_name"), tf_column="tf_first_name"),
                Level("nickname", F.arrays_overlap(_l("first_name_groups"), _r("first_name_groups"))),
                Level("jaro_winkler_high", F.col("jw_first_name") >= high),
                Level("swapped_with_last_name", names_swapped),
                Level("jaro_winkler_low", F.col("jw_first_name") >= low),
                Level("initial", one_is_initial),
                Level("different", F.lit(True)),
            ),
        ),
        Comparison(
            name="middle_name",
            exact_feature="middle_name",
            features=("middle_name", "middle_initial"),
            is_null=_either_null("middle_name"),
            levels=(
                Level("exact", _equal("middle_name")),
                Level("initial", _equal("middle_initial")),
                Level("different", F.lit(True)),
            ),
        ),
        Comparison(
            name="last_name",
            exact_feature="last_name",
            features=("last_name", "last_name_parts", "full_name_key"),
            is_null=_either_null("last_name"),
            levels=(
                Level("exact", _equal("last_name"), tf_column="tf_last_name"),
                Level("surname_part", F.arrays_overlap(_l("last_name_parts"), _r("last_name_parts"))),
                Level("jaro_winkler_high", F.col("jw_last_name") >= high),
                Level("swapped_with_first_name", names_swapped),
                Level("jaro_winkler_low", F.col("jw_last_name") >= low),
                Level("different", F.lit(True)),
            ),
        ),
        Comparison(
            name="birth_date",
            exact_feature="birth_date",
            features=("birth_date", "birth_year", "birth_month", "birth_day"),
            is_null=_either_null("birth_date"),
            levels=(
                Level("exact", _equal("birth_date"), tf_column="tf_birth_date"),
                Level("day_month_swapped", day_month_swapped),
                Level("one_part_differs", parts_equal == F.lit(2)),
                Level("same_year", same_year),
                Level("different", F.lit(True)),
            ),
        ),
        identifier_comparison("ssn"),
        identifier_comparison("ssid"),
        Comparison(
            name="gender",
            exact_feature="gender",
            features=("gender",),
            is_null=_either_null("gender"),
            levels=(Level("exact", _equal("gender")), Level("different", F.lit(True))),
        ),
        Comparison(
            name="zip",
            exact_feature="zip5",
            features=("zip5", "zip3"),
            is_null=_either_null("zip5"),
            levels=(
                Level("exact", _equal("zip5")),
                Level("same_zip3", _equal("zip3")),
                Level("different", F.lit(True)),
            ),
        ),
    )


def pair_features(comparisons: Sequence[Comparison]) -> tuple[str, ...]:
    """Every feature a pair must carry (both sides) for `comparisons` and their term frequencies."""
    names: dict[str, None] = {}
    for comparison in comparisons:
        for feature in comparison.features:
            names[feature] = None
        for level in comparison.levels:
            if level.tf_column:
                names[level.tf_column] = None
    return tuple(names)


def with_gammas(pairs: DataFrame, comparisons: Sequence[Comparison]) -> DataFrame:
    """Add gamma_<comparison> (byte) for every comparison; `pairs` must carry jw_* (see `with_similarities`)."""
    return pairs.withColumns({gamma_column(c.name): c.gamma() for c in comparisons})
