"""The synthetic generator: deliveries follow the landing contract and the feed YAML, are deterministic,
carry the identity hard cases, and the ground truth covers every row once.

One delivery of a few hundred people is generated for the module (with a higher defect rate so that every
file has broken rows to find); two small runs of a few feeds check determinism.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.config import ColumnConfig, FeedConfig, Settings
from lakehouse.landing import HadoopStore, LocalStore
from lakehouse.synth import GenerateResult, generate
from lakehouse.synth.draws import Draws
from lakehouse.synth.identity import with_digit_error
from lakehouse.synth.keys import PLACEHOLDER_SSNS
from lakehouse.synth.reference import WeightedGroups
from lakehouse.synth.render import as_text, csv_field, impossible_date
from tests.conftest import isolated

PEOPLE, SEED = 400, 11
BAD_ROW_RATE = 0.004
DELIVERY = "synth-test"


def _with(settings: Settings, name: str, **synth: Any) -> Settings:
    """Isolated folders and databases, and a defect rate high enough that every file has broken rows."""
    s = isolated(settings, name)
    return dataclasses.replace(s, synth=dataclasses.replace(s.synth, bad_row_rate=BAD_ROW_RATE, **synth))


def _only(settings: Settings, partners: set[str]) -> Settings:
    return dataclasses.replace(settings, partners=tuple(p for p in settings.partners if p.name in partners))


@pytest.fixture(scope="module")
def delivery(spark: SparkSession, settings: Settings) -> Iterator[tuple[Settings, GenerateResult]]:
    s = _with(settings, "synth")
    yield s, generate(spark, s, people=PEOPLE, seed=SEED, delivery_id=DELIVERY)


def _manifest(folder: str) -> dict[str, Any]:
    return dict(json.loads((Path(folder) / "_manifest.json").read_text(encoding="utf-8")))


def _data_lines(feed: FeedConfig, folder: str) -> list[str]:
    """Every data line of a delivery (header removed), in file order."""
    lines: list[str] = []
    for name in _manifest(folder)["files"]:
        text = (Path(folder) / name["name"]).read_text(encoding="utf-8")
        assert text == "" or text.endswith("\n")
        file_lines = text.split("\n")[:-1]
        lines.extend(file_lines[1:] if feed.has_header_line else file_lines)
    return lines


def _record_key(feed: FeedConfig, line: str) -> str:
    """The record key of a data line, also for rows written with a defect."""
    names = [c.name for c in feed.columns]
    position = names.index(feed.record_key)
    if feed.format == "csv":
        return next(csv.reader([line], delimiter=feed.delimiter))[position]
    if feed.format == "jsonl":
        match = re.search(rf'"{feed.record_key}":"([^"]*)"', line)
        assert match, line
        return match.group(1)
    start = sum(c.width or 0 for c in feed.columns[:position])
    return line[start : start + (feed.columns[position].width or 0)].rstrip()


def _fields(feed: FeedConfig, line: str) -> dict[str, str | None] | None:
    """The line's values by column name, or None when the line is structurally broken."""
    names = [c.name for c in feed.columns]
    if feed.format == "csv":
        values = next(csv.reader([line], delimiter=feed.delimiter))
        return dict(zip(names, [v or None for v in values], strict=True)) if len(values) == len(names) else None
    if feed.format == "jsonl":
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return None
        assert list(obj) == names and all(v is None or isinstance(v, str) for v in obj.values()), line
        return dict(obj)
    if len(line) != sum(c.width or 0 for c in feed.columns):
        return None
    result: dict[str, str | None] = {}
    start = 0
    for column in feed.columns:
        value = line[start : start + (column.width or 0)].rstrip()
        result[column.name] = value or None
        start += column.width or 0
    return result


def _strptime(pattern: str) -> str:
    return pattern.replace("yyyy", "%Y").replace("MM", "%m").replace("dd", "%d")


def test_every_feed_has_one_clean_delivery(delivery: tuple[Settings, GenerateResult]) -> None:
    settings, result = delivery
    assert {(r.partner, r.feed) for r in result.feeds} == {(f.partner, f.name) for f in settings.feeds()}
    for r in result.feeds:
        feed = settings.feed(r.partner, r.feed)
        folder = Path(r.path)
        assert folder == Path(settings.storage.path("landing")) / r.partner / r.feed / DELIVERY
        names = sorted(p.name for p in folder.iterdir())
        expected = [f"{feed.name}_{i:04d}.{feed.file_extension}" for i in range(len(r.files))]
        assert names == sorted([*expected, "_manifest.json"]), "no _SUCCESS, .crc or Spark folders are left"


def test_manifests_match_their_files(delivery: tuple[Settings, GenerateResult]) -> None:
    settings, result = delivery
    for r in result.feeds:
        feed = settings.feed(r.partner, r.feed)
        manifest = _manifest(r.path)
        assert {k: manifest[k] for k in ("partner", "feed", "delivery_id", "format", "encoding")} == {
            "partner": feed.partner,
            "feed": feed.name,
            "delivery_id": DELIVERY,
            "format": feed.format,
            "encoding": feed.encoding,
        }
        datetime.fromisoformat(manifest["delivered_at"].replace("Z", "+00:00"))
        total = 0
        for entry in manifest["files"]:
            data = (Path(r.path) / entry["name"]).read_bytes()
            header = 1 if feed.has_header_line else 0
            assert entry["bytes"] == len(data)
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
            assert entry["rows"] == data.count(b"\n") - header
            total += entry["rows"]
        assert total == r.rows > 0, feed.key


def test_files_follow_the_feed_yaml(delivery: tuple[Settings, GenerateResult]) -> None:
    settings, result = delivery
    for r in result.feeds:
        feed = settings.feed(r.partner, r.feed)
        for entry in _manifest(r.path)["files"]:
            first = (Path(r.path) / entry["name"]).read_text(encoding="utf-8").split("\n", 1)[0]
            if feed.format == "csv":
                assert first == feed.delimiter.join(c.name for c in feed.columns), feed.key
        lines = _data_lines(feed, r.path)
        parsed = [_fields(feed, line) for line in lines]
        broken = sum(p is None for p in parsed)
        assert broken <= max(3, len(lines) * BAD_ROW_RATE * 3), f"{feed.key}: {broken} of {len(lines)} broken"
        bad_dates = 0
        for values in filter(None, parsed):
            for column in feed.columns:
                value = values[column.name]
                if column.type == "date" and value is not None:
                    try:
                        datetime.strptime(value, _strptime(column.format or ""))
                    except ValueError:
                        bad_dates += 1
                if column.type == "boolean" and value is not None:
                    assert value in ("Y", "N"), (feed.key, column.name, value)
        assert bad_dates <= max(3, len(lines) * BAD_ROW_RATE * 3), f"{feed.key}: {bad_dates} bad dates"
    fixed = next(f for f in settings.feeds() if f.format == "fixed_width")
    wage_lines = _data_lines(fixed, next(r.path for r in result.feeds if r.feed == fixed.name))
    width = sum(c.width or 0 for c in fixed.columns)
    assert Counter(len(line) == width for line in wage_lines)[True] > 0.98 * len(wage_lines)
    assert any(len(line) != width for line in wage_lines), "some fixed-width lines are broken on purpose"


def test_ground_truth_covers_every_record_key_once(
    spark: SparkSession, delivery: tuple[Settings, GenerateResult]
) -> None:
    settings, result = delivery
    truth = spark.read.parquet(result.ground_truth)
    assert sorted(truth.columns) == ["feed", "partner", "person_key", "record_key"]
    by_feed: dict[tuple[str, str], Counter[str]] = {}
    for row in truth.select("partner", "feed", "record_key").collect():
        by_feed.setdefault((row["partner"], row["feed"]), Counter())[row["record_key"]] += 1
    for r in result.feeds:
        feed = settings.feed(r.partner, r.feed)
        keys = Counter(_record_key(feed, line) for line in _data_lines(feed, r.path))
        assert max(keys.values()) == 1, f"{feed.key}: record keys are unique"
        assert by_feed[(r.partner, r.feed)] == keys, feed.key


def test_hard_cases_occur(spark: SparkSession, delivery: tuple[Settings, GenerateResult]) -> None:
    settings, result = delivery
    people = spark.read.parquet(result.people_path)
    assert people.count() == PEOPLE
    cases = Counter(c for row in people.select("hard_cases").collect() for c in row["hard_cases"])
    for case in ("twin", "no_ssn", "shared_ssn", "name_change", "compound_surname"):
        assert cases[case] > 0, case
    twins = people.where("is_twin").select("person_key", "twin_person_key", "last_name", "birth_date", "first_name")
    pairs = twins.alias("a").join(twins.alias("b"), F.col("a.twin_person_key") == F.col("b.person_key"), "inner")
    assert pairs.count() == twins.count() > 0
    assert pairs.where("a.last_name = b.last_name AND a.birth_date = b.birth_date").count() == pairs.count()
    assert pairs.where("a.first_name = b.first_name").count() == 0

    aid = settings.feed("csac", "aid_applications")
    applications = [v for v in (_fields(aid, line) for line in _data_lines(aid, _path(result, aid))) if v]
    cadaa = [a for a in applications if a["application_type"] == "CADAA"]
    assert cadaa and all(a["ssn"] is None for a in cadaa)

    wages = settings.feed("edd", "ui_wages")
    ssn_by_key = {}
    for line in _data_lines(wages, _path(result, wages)):
        values = _fields(wages, line)
        if values:
            ssn_by_key[values["wage_record_id"]] = values["ssn"]
    assert set(ssn_by_key.values()) & set(PLACEHOLDER_SSNS), "placeholder SSNs appear in wage records"
    truth = spark.read.parquet(result.ground_truth).where("feed = 'ui_wages'").collect()
    people_by_ssn: dict[str, set[str]] = {}
    for row in truth:
        ssn = ssn_by_key.get(row["record_key"])
        if ssn and ssn not in PLACEHOLDER_SSNS:
            people_by_ssn.setdefault(ssn, set()).add(row["person_key"])
    assert max(len(p) for p in people_by_ssn.values()) >= 2, "one SSN is used by several people"


def _path(result: GenerateResult, feed: FeedConfig) -> str:
    return next(r.path for r in result.feeds if (r.partner, r.feed) == (feed.partner, feed.name))


def _digests(result: GenerateResult) -> dict[tuple[str, str], list[str]]:
    return {(r.partner, r.feed): [f["sha256"] for f in _manifest(r.path)["files"]] for r in result.feeds}


def test_same_seed_gives_the_same_bytes_whatever_the_partitioning(
    spark: SparkSession, settings: Settings, delivery: tuple[Settings, GenerateResult]
) -> None:
    _, first = delivery
    again_settings = _only(_with(settings, "synth_again", partitions=5), {"dss", "edd", "ucop"})
    again = generate(spark, again_settings, people=PEOPLE, seed=SEED, delivery_id=DELIVERY)
    assert len(again.feeds) == 4  # one CSV, one fixed-width and two JSON Lines feeds
    expected = _digests(first)
    for key, digests in _digests(again).items():
        assert digests == expected[key], key


def test_another_seed_gives_other_bytes(
    spark: SparkSession, settings: Settings, delivery: tuple[Settings, GenerateResult]
) -> None:
    _, first = delivery
    other = generate(spark, _only(_with(settings, "synth_other"), {"dss"}), people=PEOPLE, seed=SEED + 1)
    (digests,) = _digests(other).values()
    assert digests != _digests(first)[("dss", "program_participation")]
    with pytest.raises(FileExistsError):
        generate(spark, _only(_with(settings, "synth_other"), {"dss"}), PEOPLE, SEED, other.delivery_id)


def test_csv_field_quotes_only_when_needed(spark: SparkSession) -> None:
    df = spark.createDataFrame([("a",), ("x|y",), ('say "hi"',), (None,)], "raw string")
    expected = spark.createDataFrame(
        [("a", "a"), ("x|y", '"x|y"'), ('say "hi"', '"say ""hi"""'), (None, "")], "raw string, field string"
    )
    result = df.withColumn("field", csv_field(F.col("raw"), "|"))
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_digit_error_swaps_or_changes_one_digit(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [("123456789", 0.0, 0.1, 0.0), ("123456789", 0.0, 0.9, 0.0), (None, 0.5, 0.5, 0.5)],
        "ssn string, u_position double, u_kind double, u_digit double",
    )
    error = with_digit_error(F.col("ssn"), F.col("u_position"), F.col("u_kind"), F.col("u_digit"))
    expected = spark.createDataFrame(
        [("123456789", "213456789"), ("123456789", "223456789"), (None, None)], "ssn string, noisy string"
    )
    assert_df_equality(df.select("ssn", error.alias("noisy")), expected, ignore_row_order=True)


def test_weighted_draw_stays_in_its_group(spark: SparkSession) -> None:
    groups = WeightedGroups.build([0, 0, 1], [1.0, 3.0, 5.0], n_groups=3)
    # group 0: row 0 (weight 1) keeps half of its slot and lends the rest to row 1 (weight 3)
    rows = [(0.1, 0), (0.3, 0), (0.99, 0), (0.5, 1), (0.5, 2), (None, 0)]
    df = spark.createDataFrame(rows, "u double, grp int")
    expected = spark.createDataFrame(
        [(0.1, 0, 0), (0.3, 0, 1), (0.99, 0, 1), (0.5, 1, 2), (0.5, 2, None), (None, 0, None)],
        "u double, grp int, row int",
    )
    assert_df_equality(df.withColumn("row", groups.pick(F.col("u"), F.col("grp"))), expected, ignore_row_order=True)


def test_draws_do_not_depend_on_partitioning(spark: SparkSession) -> None:
    draws = Draws(5)
    one = spark.range(0, 2000, numPartitions=1).select("id", draws.u("x", F.col("id")).alias("u"))
    many = spark.range(0, 2000, numPartitions=7).select("id", draws.u("x", F.col("id")).alias("u"))
    assert_df_equality(one, many, ignore_row_order=True)
    stats = one.agg(F.min("u"), F.max("u"), F.avg("u")).first()
    assert stats is not None and stats[0] >= 0 and stats[1] < 1 and 0.45 < stats[2] < 0.55
    codes = spark.range(0, 5000).select(draws.feistel(F.col("id") * 7919, "keys").alias("code"))
    assert codes.distinct().count() == 5000


def test_values_are_written_as_the_contract_says(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [(datetime(2003, 2, 1).date(), True, 1234.5, 7), (None, None, None, None)],
        "d date, b boolean, x double, n int",
    )
    us_date = ColumnConfig(name="d", type="date", format="MM/dd/yyyy")
    written = df.select(
        as_text(F.col("d"), us_date).alias("d"),
        as_text(F.col("b"), ColumnConfig(name="b", type="boolean")).alias("b"),
        as_text(F.col("x"), ColumnConfig(name="x", type="decimal", precision=10, scale=2)).alias("x"),
        as_text(F.col("n"), ColumnConfig(name="n", type="int")).alias("n"),
        impossible_date(us_date, F.lit(0.0)).alias("bad"),
    )
    expected = spark.createDataFrame(
        [("02/01/2003", "Y", "1234.50", "7", "02/30/2003"), (None, None, None, None, "02/30/2003")],
        "d string, b string, x string, n string, bad string",
    )
    assert_df_equality(written, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("kind", ["local", "hadoop"])
def test_stores_write_list_rename_digest_and_delete(spark: SparkSession, tmp_path: Path, kind: str) -> None:
    store = LocalStore() if kind == "local" else HadoopStore(spark)
    root = str(tmp_path) if kind == "local" else f"file://{tmp_path}"
    store.write_text(f"{root}/d/a.txt", "x,y\n1,2\n")
    store.rename(f"{root}/d/a.txt", f"{root}/d/b.txt")
    assert [n for n, is_dir in store.list_dir(f"{root}/d") if not n.startswith(".")] == ["b.txt"]
    digest = store.digest(f"{root}/d/b.txt")
    assert (digest.bytes, digest.lines) == (8, 2)
    assert digest.sha256 == hashlib.sha256(b"x,y\n1,2\n").hexdigest()
    store.delete(f"{root}/d")
    assert not store.exists(f"{root}/d")
