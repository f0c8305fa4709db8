"""Typing and validation of bronze rows against the feed contract (conf/partners/*.yaml).

Which problems reject a row (it goes to quarantine instead of silver):
- `required`: a column marked required is missing (null or blank), identity columns included, since
  the contract says the partner always sends it;
- `type`: a non-identity column has a value that does not parse as its YAML type (int, long, double,
  decimal, date in the column's format, boolean Y/N/TRUE/FALSE/1/0);
- `allowed_values`: a non-identity column has a value outside its `allowed` list;
- `identity`: the row has no usable identifying value at all (ids, names, birth date and address all
  missing or invalid after standardization; gender, race or zip alone identify no one). Such a row
  belongs to no one, and keeping it would collapse all of a partner's anonymous rows into one fake
  person record.
Otherwise identity values are never a reason to reject a row: an unparseable birth date, an invalid
SSN or an unknown gender spelling becomes a null in silver.person_records (the raw value stays in
bronze), because the row's facts (an enrollment, a wage) are still true and linkage works with the
identity values that are left.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.bronze.quarantine import problem_text
from lakehouse.config import ColumnConfig, FeedConfig
from lakehouse.silver.identity import standardized_identity
from lakehouse.silver.standardize import parse_date

TRUE_SPELLINGS = ("Y", "YES", "T", "TRUE", "1")
FALSE_SPELLINGS = ("N", "NO", "F", "FALSE", "0")

FAILURE_TYPE = T.StructType(
    [
        T.StructField("rule", T.StringType()),
        T.StructField("column", T.StringType()),
        T.StructField("message", T.StringType()),
    ]
)


def _text(raw: Column) -> Column:
    return F.nullif(F.trim(raw), F.lit(""))


def typed_value(column: ColumnConfig, raw: Column) -> Column:
    """`raw` (a bronze string) as the column's YAML type; null when blank or when it does not parse."""
    text = _text(raw)
    if column.type == "string":
        return text
    if column.type == "date":
        return parse_date(text, column.format or "yyyy-MM-dd")
    if column.type == "boolean":
        upper = F.upper(text)
        return F.when(upper.isin(*TRUE_SPELLINGS), F.lit(True)).when(upper.isin(*FALSE_SPELLINGS), F.lit(False))
    return text.try_cast(column.spark_type())


def _type_description(column: ColumnConfig) -> str:
    if column.type == "date":
        return f"date in format {column.format}"
    if column.type == "boolean":
        return "boolean (Y/N, TRUE/FALSE, 1/0)"
    return column.spark_type()


def failure(rule: str, column: str | None, message: Column) -> Column:
    """One element of `failures`: (rule, column or null, message)."""
    return F.struct(F.lit(rule).alias("rule"), F.lit(column).cast("string").alias("column"), message.alias("message"))


def column_failures(column: ColumnConfig) -> list[Column]:
    """One Column per check of `column`: a (rule, column, message) struct when the row fails it, else null.

    Messages quote the offending value except for PII columns, whose values stay out of reasons.
    """
    text = _text(F.col(column.name))
    shown = F.lit("(withheld: pii)") if column.pii else F.format_string("'%s'", text)
    checks = []
    if column.required:
        checks.append(F.when(text.isNull(), failure("required", column.name, F.lit("a required value is missing"))))
    if column.identity:
        return checks
    if column.type != "string":
        message = F.concat(F.lit("value "), shown, F.lit(f" is not a valid {_type_description(column)}"))
        bad_type = text.isNotNull() & typed_value(column, F.col(column.name)).isNull()
        checks.append(F.when(bad_type, failure("type", column.name, message)))
    if column.allowed:
        message = F.concat(F.lit("value "), shown, F.lit(f" is not one of {', '.join(column.allowed)}"))
        checks.append(
            F.when(text.isNotNull() & ~text.isin(*column.allowed), failure("allowed_values", column.name, message))
        )
    return checks


IDENTIFYING = ("local_id", "ssn", "ssid", "first_name", "middle_name", "last_name", "birth_date", "address_line")
"""Standardized values that can tell people apart (gender, race, city or zip alone cannot)."""


def identity_failure(feed: FeedConfig) -> Column:
    """(identity, null, message) when none of the row's identifying values survives standardization."""
    standardized = standardized_identity(feed)
    values = [standardized[name].cast("string") for name in IDENTIFYING]
    message = F.lit("no usable identity value: every identifying column is missing or invalid after standardization")
    return F.when(F.coalesce(*values).isNull(), failure("identity", None, message))


def with_failures(bronze: DataFrame, feed: FeedConfig) -> DataFrame:
    """Add `failures`: every check the row fails, in column order (rule, column, message); empty when valid."""
    checks = [check for column in feed.columns for check in column_failures(column)]
    checks.append(identity_failure(feed))
    failures = F.array_compact(F.array(*checks)) if checks else F.array().cast(T.ArrayType(FAILURE_TYPE))
    return bronze.withColumn("failures", failures)


def filter_valid(checked: DataFrame) -> DataFrame:
    """Rows that passed every check."""
    return checked.where(F.size("failures") == F.lit(0))


def filter_rejected(checked: DataFrame) -> DataFrame:
    """Rows that failed at least one check."""
    return checked.where(F.size("failures") > F.lit(0))


def typed_columns(feed: FeedConfig) -> list[Column]:
    """The feed's non-identity columns, typed per YAML, under their own names and in YAML order."""
    return [typed_value(c, F.col(c.name)).alias(c.name) for c in feed.columns if not c.identity]


def quarantine_rows(rejected: DataFrame, feed: FeedConfig, rejected_at: datetime) -> DataFrame:
    """One quarantine row per rejected bronze row: rule and column of its first failure, every failure in
    the reason ("file f line 3: column school_year: rule type: value 'x' is not a valid int"), and the
    row's raw bronze values as JSON (nulls kept).
    """
    described = F.transform("failures", lambda f: problem_text(f["column"], f["rule"], f["message"]))
    raw = F.to_json(F.struct(*[F.col(c.name) for c in feed.columns]), {"ignoreNullFields": "false"})
    return rejected.select(
        F.lit("silver").alias("stage"),
        F.lit(feed.partner).alias("partner"),
        F.lit(feed.name).alias("feed"),
        F.col("delivery_id"),
        F.col("source_file"),
        F.col("line_number"),
        F.col("failures")[0]["rule"].alias("rule"),
        F.col("failures")[0]["column"].alias("column"),
        F.format_string("file %s line %d: %s", "source_file", "line_number", F.array_join(described, "; ")).alias(
            "reason"
        ),
        raw.alias("raw"),
        F.lit(rejected_at).cast("timestamp").alias("rejected_at"),
    )
