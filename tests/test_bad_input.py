"""Bad input, one real file per kind: what a partner can get wrong, and what the lakehouse does about it.

Every case is a delivery written byte for byte and delivered with `lakehouse.landing.deliver` (the partner's
side: the manifest is computed from the files), then tampered with where the case is a file that no longer
matches its manifest. One bronze run ingests all of them, then silver types the rows.

- A problem with a whole file rejects its delivery: no bronze or quarantine row, only a 'rejected' ledger
  row whose reason names the file, line, column and rule.
- A problem with a row sends that line to quarantine with its rule, line number and raw text.
- For every delivery: rows in the files = rows in bronze + rows quarantined by bronze.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_profile
from hypothesis import strategies as st
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.bronze import DeliveryResult, ingest_landing
from lakehouse.bronze.ingest import ingest_delivery
from lakehouse.bronze.landing import LandingFileSystem, find_deliveries
from lakehouse.config import Settings
from lakehouse.landing import MANIFEST, deliver
from lakehouse.session import create_databases
from lakehouse.silver import build_silver
from tests.conftest import isolated

HEADER = (
    "enrollment_id|college_student_id|ssn|ssid|first_name|last_name|birth_date|gender|college_code|term_code|"
    "units_attempted"
)
PARTNER, FEED = "cccco", "ccc_enrollment"
MAX_FIELD = 1000  # conf/base.yaml bronze.max_field_chars


def row(n: int, first: str = "Ann", birth: str = "01/01/2002", units: str = "12.0") -> str:
    return f"E{n}|C{n:03d}|||{first}|Lee|{birth}|F|111|2019FA|{units}"


def csv_file(*rows: str, header: str = HEADER, newline: str = "\n") -> bytes:
    return newline.join([header, *rows, ""]).encode("utf-8")


AWARDS_HEADER = (
    "award_id|college_student_id|ssn|first_name|last_name|birth_date|college_code|award_date|award_type|program_code"
)


def award(n: int, date: str = "06/15/2020", kind: str = "AA") -> str:
    return f"A{n}|C{n:03d}||Ann|Lee|01/01/2002|111|{date}|{kind}|0101.00"


@dataclasses.dataclass(frozen=True)
class Case:
    """One delivery of the ccc_enrollment feed (unless `partner`/`feed` say otherwise)."""

    content: bytes
    tamper: dict[str, object] = dataclasses.field(default_factory=dict)
    """Manifest fields of the file to override after delivery (the file no longer matches them)."""
    partner: str = PARTNER
    feed: str = FEED


GOOD = csv_file(row(1), row(2))
CASES: dict[str, Case] = {
    # ------------------------------------------------------------------ row-level: quarantined lines
    "column_count": Case(csv_file(row(1), "E2|C002|||Bo|Li|02/02/2002|M|111", row(3))),
    "quoting": Case(csv_file(row(1), 'E2|C002|||"Bo|Li|02/02/2002|M|111|2019FA|1.0', row(3))),
    "embedded_newline": Case(csv_file(row(1), 'E2|C002|||"Bo\nJo"|Li|02/02/2002|M|111|2019FA|1.0', row(3))),
    "oversized_field": Case(csv_file(row(1), row(2, first="A" * (MAX_FIELD + 1)))),
    "wrong_types": Case(csv_file(row(1), row(2, units="12.x"), row(3, units="-"))),
    "impossible_date": Case(
        csv_file(award(1), award(2, date="02/30/2020"), award(3, date="13/01/2020"), header=AWARDS_HEADER),
        feed="ccc_awards",
    ),
    "crlf": Case(csv_file(row(1), row(2), newline="\r\n")),
    "byte_order_mark": Case(b"\xef\xbb\xbf" + GOOD),
    # ------------------------------------------------------------------ file-level: rejected deliveries
    "latin1": Case(("\n".join([HEADER, row(1), row(2, first="José"), ""])).encode("latin-1")),
    "empty_file": Case(b""),
    "truncated": Case(GOOD[:-20], tamper={"bytes": len(GOOD), "sha256": "a" * 64, "rows": 2}),
    "row_count": Case(GOOD, tamper={"rows": 5}),
    "checksum": Case(GOOD, tamper={"sha256": "0" * 64}),
    "missing_column": Case(csv_file(row(1)[: row(1).rindex("|")], header=HEADER[: HEADER.rindex("|")])),
    "extra_column": Case(csv_file(row(1) + "|x", header=HEADER + "|campus")),
    "renamed_column": Case(csv_file(row(1), header=HEADER.replace("ssid", "state_student_id"))),
    "unknown_partner": Case(GOOD, partner="nobody"),
    "unknown_feed": Case(GOOD, feed="ccc_transcripts"),
    "original": Case(GOOD),
    "resent": Case(GOOD),  # the same file as "original", under a new delivery id
}
REJECTED = {
    # case: (rule, what the reason must say: file, line and column where the problem has them)
    "latin1": ("encoding", "file latin1.txt line 3 column 14: rule encoding:"),
    "empty_file": ("header", "file empty_file.txt line 1: rule header: the file is empty"),
    "truncated": ("bytes", "file truncated.txt: rule bytes:"),
    "row_count": ("row_count", "file row_count.txt: rule row_count: 2 data rows, the manifest says 5"),
    "checksum": ("checksum", "file checksum.txt: rule checksum:"),
    "missing_column": ("header", "file missing_column.txt line 1 column 11: rule header: the header lacks column"),
    "extra_column": ("header", "file extra_column.txt line 1 column 12: rule header: unexpected column 'campus'"),
    "renamed_column": (
        "header",
        "file renamed_column.txt line 1 column 4: rule header: column 4 is 'state_student_id'",
    ),
    "unknown_partner": ("unknown_partner", "rule unknown_partner: partner 'nobody' is not in conf/partners"),
    "unknown_feed": ("unknown_feed", "rule unknown_feed: feed 'ccc_transcripts' is not a feed of partner 'cccco'"),
    "resent": ("duplicate", "rule duplicate: the same files as delivery original"),
}
QUARANTINED = {
    # case: (line number, rule, column) of each quarantined line
    "column_count": [(3, "column_count", None)],
    "quoting": [(3, "quoting", None)],
    "embedded_newline": [(3, "quoting", None), (4, "quoting", None)],
    "oversized_field": [(3, "field_length", "first_name")],
}
TYPED = {
    "wrong_types": [(3, "type", "units_attempted"), (4, "type", "units_attempted")],
    "impossible_date": [(3, "type", "award_date"), (4, "type", "award_date")],
}


def _write_delivery(settings: Settings, name: str, case: Case, source: Path) -> None:
    """Deliver the case's file as delivery `name` (moved by hand where deliver() refuses the partner or feed)."""
    path = source / f"{name}.txt"
    path.write_bytes(case.content)
    known = any(f.partner == case.partner and f.name == case.feed for f in settings.feeds())
    delivered = deliver(
        settings, case.partner if known else PARTNER, case.feed if known else FEED, [path], delivery_id=name
    )
    folder = Path(delivered.folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    if not known:
        moved = Path(settings.storage.path("landing")) / case.partner / case.feed / name
        moved.parent.mkdir(parents=True)
        folder = folder.rename(moved)
        manifest.update(partner=case.partner, feed=case.feed)
    manifest["files"][0].update(case.tamper)
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def bad_settings(spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = isolated(settings, "bad")
    create_databases(spark, s)
    source = tmp_path_factory.mktemp("partner-files")
    for name, case in CASES.items():
        _write_delivery(s, name, case, source)
    return s


@pytest.fixture(scope="module")
def results(spark: SparkSession, bad_settings: Settings) -> dict[str, DeliveryResult]:
    found = {r.delivery_id: r for r in ingest_landing(spark, bad_settings)}
    build_silver(spark, bad_settings)
    return found


def test_every_case_is_in_the_ledger(results: dict[str, DeliveryResult]) -> None:
    assert set(results) == set(CASES)
    assert {n for n, r in results.items() if r.status == "rejected"} == set(REJECTED)


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_file_level_problems_reject_the_delivery_naming_file_line_column_and_rule(
    spark: SparkSession, bad_settings: Settings, results: dict[str, DeliveryResult], name: str
) -> None:
    rule, says = REJECTED[name]
    result = results[name]
    assert (result.status, result.rule) == ("rejected", rule)
    assert says in result.reason, result.reason
    bronze = spark.table(bad_settings.table("bronze", f"{PARTNER}_{FEED}"))
    assert bronze.where(F.col("delivery_id") == name).isEmpty()
    rejected_rows = spark.table(bad_settings.table("quarantine", "rejected_rows"))
    assert rejected_rows.where(F.col("delivery_id") == name).isEmpty()
    ledger = spark.table(bad_settings.table("ops", "deliveries")).where(F.col("delivery_id") == name)
    assert [(r["status"], r["rule"], r["reason"]) for r in ledger.collect()] == [("rejected", rule, result.reason)]


@pytest.mark.parametrize("name", sorted(QUARANTINED))
def test_row_level_problems_quarantine_the_line_with_rule_and_raw_text(
    spark: SparkSession, bad_settings: Settings, results: dict[str, DeliveryResult], name: str
) -> None:
    assert results[name].status == "ingested"
    rows = (
        spark.table(bad_settings.table("quarantine", "rejected_rows"))
        .where((F.col("delivery_id") == name) & (F.col("stage") == "bronze"))
        .orderBy("line_number")
        .collect()
    )
    assert [(r["line_number"], r["rule"], r["column"]) for r in rows] == QUARANTINED[name]
    lines = CASES[name].content.decode("utf-8").split("\n")
    for r in rows:
        assert r["source_file"] == f"{name}.txt"
        assert r["raw"] == lines[r["line_number"] - 1]
        assert r["reason"].startswith(f"file {name}.txt line {r['line_number']}: "), r["reason"]


@pytest.mark.parametrize("name", sorted(TYPED))
def test_wrong_types_pass_bronze_and_are_quarantined_by_silver_with_their_column(
    spark: SparkSession, bad_settings: Settings, results: dict[str, DeliveryResult], name: str
) -> None:
    assert (results[name].rows_bronze, results[name].rows_quarantined) == (3, 0)
    rows = (
        spark.table(bad_settings.table("quarantine", "rejected_rows"))
        .where((F.col("delivery_id") == name) & (F.col("stage") == "silver"))
        .orderBy("line_number")
        .collect()
    )
    assert [(r["line_number"], r["rule"], r["column"]) for r in rows] == TYPED[name]
    lines = CASES[name].content.decode("utf-8").split("\n")
    for r in rows:
        bad = lines[r["line_number"] - 1].split("|")[10 if name == "wrong_types" else 7]
        assert r["reason"].startswith(f"file {name}.txt line {r['line_number']}: column {r['column']}: rule type:")
        assert f"value '{bad}' is not a valid" in r["reason"], r["reason"]


def test_crlf_and_byte_order_mark_files_ingest_clean_values(
    spark: SparkSession, bad_settings: Settings, results: dict[str, DeliveryResult]
) -> None:
    bronze = spark.table(bad_settings.table("bronze", f"{PARTNER}_{FEED}"))
    for name in ("crlf", "byte_order_mark"):
        assert (results[name].status, results[name].rows_bronze, results[name].rows_quarantined) == ("ingested", 2, 0)
        values = bronze.where(F.col("delivery_id") == name).orderBy("line_number").collect()
        assert [(r["enrollment_id"], r["units_attempted"]) for r in values] == [("E1", "12.0"), ("E2", "12.0")]


def test_counts_reconcile_for_every_ingested_delivery(
    spark: SparkSession, bad_settings: Settings, results: dict[str, DeliveryResult]
) -> None:
    rejected_rows = spark.table(bad_settings.table("quarantine", "rejected_rows")).where(F.col("stage") == "bronze")
    for name, result in results.items():
        if result.status != "ingested":
            continue
        bronze = spark.table(bad_settings.table("bronze", f"{result.partner}_{result.feed}"))
        in_bronze = bronze.where(F.col("delivery_id") == name).count()
        in_quarantine = rejected_rows.where(F.col("delivery_id") == name).count()
        lines = CASES[name].content.count(b"\n") - 1
        assert (result.rows_in_files, result.rows_bronze, result.rows_quarantined) == (
            lines,
            in_bronze,
            in_quarantine,
        ), name
        assert result.rows_in_files == in_bronze + in_quarantine, name


def test_the_same_delivery_again_is_skipped_not_counted_twice(
    spark: SparkSession, bad_settings: Settings, results: dict[str, DeliveryResult]
) -> None:
    bronze = spark.table(bad_settings.table("bronze", f"{PARTNER}_{FEED}"))
    before = bronze.count()
    again = {r.delivery_id: r.status for r in ingest_landing(spark, bad_settings)}
    assert {again[n] for n in CASES if n not in REJECTED} == {"skipped"}
    assert bronze.count() == before


# --------------------------------------------------------------------------------------------------
# fuzz: random malformed CSV through the real reader

FIELD = st.text(alphabet=st.sampled_from(list('ab|"\r ,é\t\x00\ufeff\ufffd1')), max_size=12)
LINE = st.one_of(
    st.lists(FIELD, min_size=0, max_size=14).map("|".join),  # any number of fields, any quoting
    st.builds(row, st.integers(1, 999)),  # and good rows among them
)


@given(lines=st.lists(LINE, min_size=0, max_size=12), crlf=st.booleans(), final_newline=st.booleans())
@settings_profile(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_every_line_lands_in_exactly_one_of_bronze_or_quarantine(
    spark: SparkSession, bad_settings: Settings, tmp_path: Path, *, lines: list[str], crlf: bool, final_newline: bool
) -> None:
    newline = "\r\n" if crlf else "\n"
    text = newline.join([HEADER, *lines]) + (newline if final_newline or not lines else "")
    path = tmp_path / f"fuzz-{uuid.uuid4().hex[:12]}.txt"
    path.write_bytes(text.encode("utf-8"))
    delivery = deliver(bad_settings, PARTNER, FEED, [path], delivery_id=path.stem)
    folder = find_deliveries(LandingFileSystem(spark), bad_settings.storage.path("landing"))
    this = next(f for f in folder if f.delivery_id == path.stem)
    result, _ = ingest_delivery(spark, bad_settings, LandingFileSystem(spark), this)

    bronze = spark.table(bad_settings.table("bronze", f"{PARTNER}_{FEED}")).where(F.col("delivery_id") == path.stem)
    quarantined = spark.table(bad_settings.table("quarantine", "rejected_rows")).where(
        F.col("delivery_id") == path.stem
    )
    assert result.rows_in_files == delivery.rows
    if result.status == "rejected":  # only bytes that are not UTF-8 can reject a file that matches its manifest
        assert result.rule == "encoding", result.reason
        assert bronze.isEmpty() and quarantined.isEmpty()
        return
    assert result.status == "ingested", result.reason
    assert (bronze.count(), quarantined.count()) == (result.rows_bronze, result.rows_quarantined)
    assert result.rows_bronze + result.rows_quarantined == delivery.rows
    numbers = [
        r["line_number"] for r in bronze.select("line_number").union(quarantined.select("line_number")).collect()
    ]
    assert sorted(numbers) == list(range(2, delivery.rows + 2))  # every data line once, by its true number
