"""Rows of a feed to the text lines of its files, driven entirely by the feed's YAML contract.

Column names, order, types, date formats, widths, the delimiter, the header and the file format come from
the `FeedConfig`; the generator only supplies values: every non-identity YAML column by its name and every
identity column as `_id_<role>`. A small, deterministic share of rows is written with one defect a partner
really sends (wrong column count, broken JSON, wrong line length, an impossible date, letters in a number,
a blank required field), so the bronze and silver quarantines have work.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.config import ColumnConfig, FeedConfig
from lakehouse.synth.draws import Draws
from lakehouse.synth.keys import RECORD_KEY_LENGTH, record_key

NUMERIC_TYPES = ("int", "long", "double", "decimal")

DEFECTS_BY_FORMAT = {
    "csv": ("column_count_short", "column_count_long"),
    "jsonl": ("invalid_json",),
    "fixed_width": ("line_too_short", "line_too_long"),
}
"""Structural defects (caught by bronze) per file format; value defects (caught by silver) come on top."""


def source_column(column: ColumnConfig) -> str:
    """Name of the generator column that holds the values of YAML `column`."""
    return f"_id_{column.identity}" if column.identity else column.name


def as_text(value: Column, column: ColumnConfig) -> Column:
    """The value as the contract writes it: dates in the column's format, booleans Y/N, plain decimals."""
    if column.type == "date":
        return F.date_format(value.cast("date"), column.format or "yyyy-MM-dd")
    if column.type == "boolean":
        return F.when(value.cast("boolean"), F.lit("Y")).when(~value.cast("boolean"), F.lit("N"))
    if column.type == "decimal":
        return value.cast(f"decimal({column.precision},{column.scale})").cast("string")
    return F.nullif(value.cast("string"), F.lit(""))


def impossible_date(column: ColumnConfig, u: Column) -> Column:
    """February 30 of a year drawn by `u`, written in the column's date format (e.g. 2003-02-30 or 02/30/2003)."""
    year = F.lit(2003) + F.floor(u * 20).cast("int")  # 2003-2022: no year contains "28"
    february_28 = F.date_format(F.make_date(year, F.lit(2), F.lit(28)), column.format or "yyyy-MM-dd")
    return F.regexp_replace(february_28, "28", "30")


def letters_in_number(text: Column) -> Column:
    """A number with its first character replaced by the letter O ("2019" -> "O019"); width is kept."""
    return F.concat(F.lit("O"), F.coalesce(text.substr(F.lit(2), F.length(text)), F.lit("")))


def csv_field(text: Column, delimiter: str) -> Column:
    """RFC-4180: quoted (inner quotes doubled) when it holds the delimiter, a quote or a line break; null -> empty."""
    special = "[" + re.escape('"' + delimiter) + r"\r\n]"
    quoted = F.concat(F.lit('"'), F.regexp_replace(text, '"', '""'), F.lit('"'))
    return F.coalesce(F.when(text.rlike(special), quoted).otherwise(text), F.lit(""))


def csv_header(feed: FeedConfig) -> str:
    """The header line (without line end) of a CSV feed: column names in YAML order."""
    special = re.compile("[" + re.escape('"' + feed.delimiter) + r"\r\n]")
    names = [f'"{c.name.replace(chr(34), chr(34) * 2)}"' if special.search(c.name) else c.name for c in feed.columns]
    return feed.delimiter.join(names)


def check_feed(feed: FeedConfig, columns: list[str], key_prefix: str) -> None:
    """Refuse early, naming the feed and column, when the generator cannot honour the contract."""
    missing = [source_column(c) for c in feed.columns if c.name != feed.record_key and source_column(c) not in columns]
    if missing:
        raise ValueError(f"feed {feed.key}: the generator has no values for {', '.join(missing)}")
    if feed.encoding.lower().replace("-", "") != "utf8":
        raise ValueError(f"feed {feed.key}: only utf-8 files can be generated, YAML says {feed.encoding}")
    key_column = feed.column(feed.record_key)
    key_length = len(key_prefix) + RECORD_KEY_LENGTH
    if feed.format == "fixed_width" and (key_column.width or 0) < key_length:
        raise ValueError(f"feed {feed.key}: record key needs width {key_length}, YAML gives {key_column.width}")
    if feed.format == "csv" and len(feed.delimiter) != 1:
        raise ValueError(f"feed {feed.key}: the delimiter must be one character, got {feed.delimiter!r}")


def render_lines(
    rows: DataFrame, feed: FeedConfig, *, draws: Draws, key_prefix: str, bad_row_rate: float, n_files: int
) -> DataFrame:
    """One row per data row: record_key, person_key, line (its text, no line end) and file_index.

    `rows` has `_row_code` (long, unique in the feed), `_person_key` and one column per YAML column (see
    `source_column`). The record key is derived from `_row_code`; the file a row goes to from its key.
    """
    check_feed(feed, rows.columns, key_prefix)
    code = F.col("_row_code")
    key = record_key(draws, feed.key, key_prefix, code)
    staged = rows.withColumns({"_record_key": key, "_defect": _defect_kind(feed, draws, code, bad_row_rate)})
    texts = {
        c.name: (F.col("_record_key") if c.name == feed.record_key else as_text(F.col(source_column(c)), c))
        for c in feed.columns
    }
    texts = _with_value_defects(feed, texts, draws, code)
    line = _line(feed, texts)
    return staged.select(
        F.col("_record_key").alias("record_key"),
        F.col("_person_key").alias("person_key"),
        line.alias("line"),
        F.pmod(draws.hash(f"file:{feed.key}", F.col("_record_key")), F.lit(n_files)).cast("int").alias("file_index"),
    )


def _value_defect_targets(feed: FeedConfig) -> dict[str, list[ColumnConfig]]:
    """Columns each value defect can hit (never the record key, so every row keeps its key)."""
    others = [c for c in feed.columns if c.name != feed.record_key]
    return {
        "impossible_date": [c for c in others if c.type == "date"],
        "letters_in_number": [c for c in others if c.type in NUMERIC_TYPES],
        "blank_required": [c for c in others if c.required],
    }


def _defect_kind(feed: FeedConfig, draws: Draws, code: Column, rate: float) -> Column:
    """The defect of the row (string), null for almost every row."""
    kinds = list(DEFECTS_BY_FORMAT[feed.format]) + [k for k, cols in _value_defect_targets(feed).items() if cols]
    return F.when(draws.chance(rate, f"{feed.key}:defect", code), draws.pick(kinds, f"{feed.key}:defect_kind", code))


def _with_value_defects(feed: FeedConfig, texts: dict[str, Column], draws: Draws, code: Column) -> dict[str, Column]:
    """Texts with the row's value defect applied to one target column chosen by the row."""
    defect = F.col("_defect")
    result = dict(texts)
    for kind, targets in _value_defect_targets(feed).items():
        if not targets:
            continue
        chosen = F.floor(draws.u(f"{feed.key}:defect_column", code) * len(targets)).cast("int")
        for i, column in enumerate(targets):
            hit = F.coalesce((defect == kind) & (chosen == i), F.lit(False))
            if kind == "impossible_date":
                bad = impossible_date(column, draws.u(f"{feed.key}:defect_year", code))
            elif kind == "letters_in_number":
                bad = letters_in_number(result[column.name])
            else:
                bad = F.lit(None).cast("string")
            result[column.name] = F.when(hit, bad).otherwise(result[column.name])
    return result


def _line(feed: FeedConfig, texts: dict[str, Column]) -> Column:
    """The row's text in the feed's format, with the row's structural defect if it has one."""
    defect = F.col("_defect")
    values = [texts[c.name] for c in feed.columns]
    if feed.format == "csv":
        fields = [csv_field(v, feed.delimiter) for v in values]
        line = F.concat_ws(feed.delimiter, *fields)
        merged = F.concat_ws(feed.delimiter, *fields[:-2], F.concat(fields[-2], fields[-1]))
        extra = F.concat(line, F.lit(feed.delimiter + "X"))
        return F.when(defect == "column_count_short", merged).when(defect == "column_count_long", extra).otherwise(line)
    if feed.format == "jsonl":
        line = F.to_json(
            F.struct(*[v.alias(c.name) for v, c in zip(values, feed.columns, strict=True)]),
            {"ignoreNullFields": "false"},
        )
        return F.when(defect == "invalid_json", line.substr(F.lit(1), F.length(line) - 1)).otherwise(line)
    padded = [F.rpad(F.coalesce(v, F.lit("")), c.width or 0, " ") for v, c in zip(values, feed.columns, strict=True)]
    line = F.concat(*padded)
    return (
        F.when(defect == "line_too_short", line.substr(F.lit(1), F.length(line) - 1))
        .when(defect == "line_too_long", F.concat(line, F.lit("0")))
        .otherwise(line)
    )
