"""Physical lines of delivery files with their true line numbers, and their split into feed columns.

Line numbers without reading files into the driver: Spark's text source reads each file in splits
(byte ranges); a split's lines come out in file order, and `_metadata.file_block_start` says which split
a line came from. So the line number of a line is (lines in the earlier splits of its file) + (its
position in its split). `split_summaries` counts the lines of every split (a tiny result: one row per
split, collected), and `with_line_numbers` adds the position in the split (a window partitioned by
split, ordered by the read order) plus the split's offset. It is the same two-pass idea as RDD
`zipWithIndex`, on DataFrames, without sending the lines through Python workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Row, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.config import FeedConfig

REPLACEMENT_CHARACTER = "\ufffd"
"""What `make_valid_utf8` puts in place of bytes that are not UTF-8 (Spark's text source keeps the bytes as read)."""
CORRUPT_RECORD = "_corrupt_record"
RESERVED_COLUMNS = (
    "raw",
    "rule",
    "rule_column",
    "detail",
    "delivery_id",
    "source_file",
    "line_number",
    "ingested_at",
    "record_id",
)
"""Names bronze and silver add next to the feed's columns; a feed column may not use them."""


@dataclass(frozen=True)
class FileLines:
    """How many physical lines a file has, and its first line (the header of a CSV)."""

    name: str
    lines: int
    first_line: str | None


def read_lines(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """One row per physical ("\\n"-terminated) line of `paths`: raw, source_file, split_start, read_order.

    `read_order` (monotonically_increasing_id) grows with the read order inside a Spark partition, so
    within one split it follows the file order.
    """
    return (
        spark.read.option("lineSep", "\n")
        .text(list(paths))
        .select(
            F.col("value").alias("raw"),
            F.col("_metadata.file_name").alias("source_file"),
            F.col("_metadata.file_block_start").alias("split_start"),
            F.monotonically_increasing_id().alias("read_order"),
        )
    )


def split_summaries(lines: DataFrame) -> DataFrame:
    """One row per file split: source_file, split_start, n_lines, first_line (of the split)."""
    return lines.groupBy("source_file", "split_start").agg(
        F.count(F.lit(1)).alias("n_lines"),
        F.min_by("raw", "read_order").alias("first_line"),
    )


def split_offsets(splits: Sequence[Row]) -> tuple[list[tuple[str, int, int]], dict[str, FileLines]]:
    """(source_file, split_start, lines before the split) per split, and the line count of each file."""
    offsets: list[tuple[str, int, int]] = []
    files: dict[str, FileLines] = {}
    for split in sorted(splits, key=lambda s: (s["source_file"], s["split_start"])):
        name = split["source_file"]
        before = files[name].lines if name in files else 0
        offsets.append((name, int(split["split_start"]), before))
        first = files[name].first_line if name in files else split["first_line"]
        files[name] = FileLines(name=name, lines=before + int(split["n_lines"]), first_line=first)
    return offsets, files


OFFSETS_SCHEMA = "source_file string, split_start long, lines_before long"


def with_line_numbers(lines: DataFrame, offsets: DataFrame) -> DataFrame:
    """Add line_number (1-based physical line in source_file); drop split_start and read_order.

    `offsets` is the small table of `split_offsets` (broadcast).
    """
    in_split = Window.partitionBy("source_file", "split_start").orderBy("read_order")
    return (
        lines.withColumn("position", F.row_number().over(in_split))
        .join(F.broadcast(offsets), on=["source_file", "split_start"], how="inner")
        .withColumn("line_number", (F.col("lines_before") + F.col("position")).cast("long"))
        .drop("split_start", "read_order", "position", "lines_before")
    )


# --------------------------------------------------------------------------------------------------
# splitting lines into fields


@dataclass(frozen=True)
class _Problem:
    rule: str
    when: Column
    detail: Column
    column: str | None = None


def _csv_options(feed: FeedConfig) -> dict[str, str]:
    """RFC-4180: fields separated by the feed's delimiter, quoted with ", a quote doubled inside quotes."""
    return {
        "sep": feed.delimiter,
        "quote": '"',
        "escape": '"',
        "mode": "PERMISSIVE",
        "columnNameOfCorruptRecord": CORRUPT_RECORD,
        "ignoreLeadingWhiteSpace": "false",
        "ignoreTrailingWhiteSpace": "false",
    }


def _string_schema(names: Sequence[str]) -> T.StructType:
    return T.StructType([T.StructField(name, T.StringType()) for name in names])


def _with_csv(lines: DataFrame, feed: FeedConfig) -> tuple[DataFrame, dict[str, Column], list[_Problem]]:
    names = [c.name for c in feed.columns]
    ddl = ", ".join(f"`{n}` STRING" for n in [*names, CORRUPT_RECORD])
    parsed = lines.withColumn("_fields", F.from_csv(F.col("_body"), ddl, _csv_options(feed)))
    detail = F.lit(f"the line does not split into {len(names)} fields separated by {feed.delimiter!r}")
    # An odd number of quote characters: a quoted field that does not close on its line. A field holding a
    # line break gives two such lines (records are lines: the contract has no multi-line fields).
    unbalanced = (F.length(F.col("_body")) - F.length(F.regexp_replace("_body", '"', ""))) % 2 == 1
    quoting = F.lit("a quoted field does not close on this line (a field may not hold a line break)")
    problems = [
        _Problem("quoting", unbalanced, quoting),
        _Problem("column_count", F.col(f"_fields.{CORRUPT_RECORD}").isNotNull(), detail),
    ]
    return parsed, {n: F.col("_fields")[n] for n in names}, problems


def _with_json(lines: DataFrame, feed: FeedConfig) -> tuple[DataFrame, dict[str, Column], list[_Problem]]:
    names = [c.name for c in feed.columns]
    parsed = lines.withColumn("_keys", F.json_object_keys("_body")).withColumn(
        "_fields", F.from_json(F.col("_body"), _string_schema(names), {"mode": "PERMISSIVE"})
    )
    body = F.trim(F.col("_body"))
    unexpected = F.array_except(F.col("_keys"), F.array(*[F.lit(n) for n in names]))
    problems = [
        _Problem(
            "json",
            F.col("_keys").isNull() | ~(body.startswith("{") & body.endswith("}")),
            F.lit("the line is not one valid JSON object"),
        ),
        _Problem(
            "json_keys",
            F.size(unexpected) > 0,
            F.concat(F.lit("unexpected key(s) "), F.array_join(unexpected, ", ")),
        ),
    ]
    return parsed, {n: F.col("_fields")[n] for n in names}, problems


def _with_fixed_width(lines: DataFrame, feed: FeedConfig) -> tuple[DataFrame, dict[str, Column], list[_Problem]]:
    total = sum(c.width or 0 for c in feed.columns)
    fields: dict[str, Column] = {}
    position = 1
    for column in feed.columns:
        width = column.width or 0
        fields[column.name] = F.trim(F.substring(F.col("_body"), position, width))
        position += width
    length = F.length(F.col("_body"))
    detail = F.format_string(f"the line has %d characters, expected {total}", length)
    return lines, fields, [_Problem("line_length", length != F.lit(total), detail)]


PARSERS = {"csv": _with_csv, "jsonl": _with_json, "fixed_width": _with_fixed_width}


BYTE_ORDER_MARK = "\ufeff"


def with_parsed_fields(lines: DataFrame, feed: FeedConfig, max_field_chars: int) -> DataFrame:
    """Add every feed column (string, empty -> null) and `rule`, `rule_column`, `detail` (null when the line
    parsed).

    Input: one row per data line with `raw` and `line_number`. Rules, first match wins: encoding (bytes that
    are not UTF-8), blank_line, then the format's own: quoting and column_count (CSV), json / json_keys (JSON
    Lines), line_length (fixed width); then field_length (a value longer than `max_field_chars`, with its
    column). A trailing carriage return is ignored, so CRLF files parse too, and so is a byte-order mark at
    the start of a file.
    """
    clashes = sorted({c.name for c in feed.columns} & set(RESERVED_COLUMNS))
    if clashes:
        raise ValueError(f"feed {feed.key}: column name(s) {', '.join(clashes)} are reserved for lineage")
    without_cr = F.regexp_replace(F.col("raw"), "\r$", "")
    first_line = F.col("line_number") == F.lit(1)
    body = lines.withColumn(
        "_body", F.when(first_line, F.regexp_replace(without_cr, f"^{BYTE_ORDER_MARK}", "")).otherwise(without_cr)
    )
    parsed, fields, format_problems = PARSERS[feed.format](body, feed)
    # The values first, in a projection of their own: the checks and the output then read each value once.
    with_values = parsed.withColumns({name: F.nullif(value, F.lit("")) for name, value in fields.items()})
    too_long = [
        _Problem(
            "field_length",
            F.length(name) > F.lit(max_field_chars),
            F.format_string(f"the value has %d characters, the limit is {max_field_chars}", F.length(name)),
            column=name,
        )
        for name in fields
    ]
    problems = [
        _Problem("encoding", ~F.is_valid_utf8("raw"), F.lit("the line is not valid UTF-8")),
        _Problem("blank_line", F.col("_body") == F.lit(""), F.lit("the line is empty")),
        *format_problems,
        *too_long,
    ]
    # The first problem's position, evaluating the conditions once per line (a CASE chain for each of rule,
    # column and detail would evaluate them three times); then only the matching problem's detail is built.
    problem_at = F.col("_problem")
    first = F.when(problems[0].when, F.lit(0))
    detail = F.when(problem_at == F.lit(0), problems[0].detail)
    for position, problem in enumerate(problems[1:], start=1):
        first = first.when(problem.when, F.lit(position))
        detail = detail.when(problem_at == F.lit(position), problem.detail)
    return (
        with_values.withColumn("_problem", first)
        .withColumns(
            {
                "rule": F.get(F.array(*[F.lit(p.rule) for p in problems]), problem_at),
                "rule_column": F.get(F.array(*[F.lit(p.column).cast("string") for p in problems]), problem_at),
                "detail": detail,
            }
        )
        .drop("_body", "_fields", "_keys", "_problem")
    )
