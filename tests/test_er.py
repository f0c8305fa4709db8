"""The deterministic linkage run and its evaluation, on tiny hand-made tables in databases of their own."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import BlockingRule, MatchingSettings, Settings
from lakehouse.er import LinkageMetrics, LinkResult, evaluate, link
from lakehouse.er.evaluation import METRICS_SCHEMA, partner_pair_counts, record_truth
from lakehouse.er.ids import cluster_person_ids, person_id, person_id_history
from lakehouse.session import create_databases
from lakehouse.tables import write_table

PERSON_SCHEMA = (
    "record_id string, partner string, feeds array<string>, n_rows long, local_id_token string, "
    "ssn_token string, ssid_token string, first_name string, middle_name string, last_name string, "
    "birth_date date, birth_year int, birth_month int, birth_day int, gender string, race_ethnicity string, "
    "address_line string, city string, zip5 string, zip3 string"
)
CROSSWALK_SCHEMA = (
    "record_id string, person_id string, partner string, cluster_size int, match_confidence double, "
    "run_id string, linked_at timestamp"
)
MPI_TABLES = (
    "matched_pairs",
    "crosswalk",
    "person_id_history",
    "capped_blocks",
    "linkage_metrics",
    "linkage_metrics_by_partner",
)
D1, D2 = date(2001, 2, 3), date(1998, 7, 9)


def assert_same(actual: DataFrame, expected: DataFrame) -> None:
    """Equal rows in any order; nullability and column comments (schema metadata) aside."""
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)


def pid(anchor: str) -> str:
    """The person id the contract derives from a cluster's smallest record_id."""
    return "P" + hashlib.sha256(f"person|{anchor}".encode()).hexdigest()[:15]


def person(
    record_id: str,
    *,
    partner: str = "cde",
    ssn: str | None = None,
    ssid: str | None = None,
    first: str | None = None,
    last: str | None = None,
    birth: date | None = None,
) -> tuple[Any, ...]:
    """One silver.person_records row with the given identity values and nulls elsewhere."""
    parts = (birth.year, birth.month, birth.day) if birth else (None, None, None)
    return (record_id, partner, [f"{partner}_feed"], 1, None, ssn, ssid, first, None, last, birth, *parts, *[None] * 6)


@pytest.fixture(scope="module")
def er_settings(settings: Settings, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose silver and mpi databases and ground truth belong to these tests alone."""
    databases = dataclasses.replace(settings.databases, silver="er_test_silver", mpi="er_test_mpi")
    ground_truth = str(tmp_path_factory.mktemp("er_ground_truth") / "ground_truth")
    storage = dataclasses.replace(settings.storage, ground_truth=ground_truth)
    assert settings.matching is not None
    baseline = dataclasses.replace(settings.matching, engine="deterministic")
    isolated = dataclasses.replace(settings, databases=databases, storage=storage, matching=baseline)
    create_databases(spark, isolated)
    return isolated


@pytest.fixture
def clean_mpi(spark: SparkSession, er_settings: Settings) -> Iterator[Settings]:
    """er_settings with every mpi table dropped before the test."""
    for name in MPI_TABLES:
        spark.sql(f"DROP TABLE IF EXISTS {er_settings.table('mpi', name)}")
    yield er_settings


def write_person_records(spark: SparkSession, settings: Settings, rows: list[tuple[Any, ...]]) -> None:
    write_table(spark.createDataFrame(rows, PERSON_SCHEMA), settings.table("silver", "person_records"))


def crosswalk_of(spark: SparkSession, settings: Settings) -> DataFrame:
    return spark.read.table(settings.table("mpi", "crosswalk")).select(
        "record_id", "person_id", "partner", "cluster_size", "match_confidence", "run_id"
    )


def history_of(spark: SparkSession, settings: Settings, run_id: str) -> DataFrame:
    return (
        spark.read.table(settings.table("mpi", "person_id_history"))
        .where(F.col("run_id") == run_id)
        .select("person_id", "event", "record_id", "reason")
    )


HISTORY_SCHEMA = "person_id string, event string, record_id string, reason string"
CROSSWALK_CHECK_SCHEMA = (
    "record_id string, person_id string, partner string, cluster_size int, match_confidence double, run_id string"
)

# A and B are linked through two rules (a chain ssn -> ssid), C by name and birth date, d0 has no identity at all.
FIRST_DELIVERY = [
    person("a1", ssn="S1"),
    person("a2", partner="csu", ssn="S1", ssid="T1"),
    person("a3", ssid="T1"),
    person("c1", first="ANA", last="LOPEZ", birth=D1),
    person("c2", partner="edd", first="ANA", last="LOPEZ", birth=D1),
    person("d0"),
]


def test_link_is_stable_and_records_merges(spark: SparkSession, clean_mpi: Settings) -> None:
    settings = clean_mpi
    write_person_records(spark, settings, FIRST_DELIVERY)

    result = link(spark, settings, "run-1")

    assert dataclasses.replace(result, iterations=0) == LinkResult(
        n_records=6, n_pairs=3, n_persons=3, n_capped_blocks=0, iterations=0, largest_cluster=3, n_candidate_pairs=3
    )
    assert result.iterations >= 1
    pairs = spark.read.table(settings.table("mpi", "matched_pairs"))
    expected_pairs = spark.createDataFrame(
        [
            ("a1", "a2", "same_ssn", "run-1"),
            ("a2", "a3", "same_ssid", "run-1"),
            ("c1", "c2", "same_name_and_birth_date", "run-1"),
        ],
        "record_id_l string, record_id_r string, rule string, run_id string",
    )
    assert_same(pairs, expected_pairs)
    expected_crosswalk = spark.createDataFrame(
        [
            ("a1", pid("a1"), "cde", 3, 1.0, "run-1"),
            ("a2", pid("a1"), "csu", 3, 1.0, "run-1"),
            ("a3", pid("a1"), "cde", 3, 1.0, "run-1"),
            ("c1", pid("c1"), "cde", 2, 1.0, "run-1"),
            ("c2", pid("c1"), "edd", 2, 1.0, "run-1"),
            ("d0", pid("d0"), "cde", 1, 1.0, "run-1"),
        ],
        CROSSWALK_CHECK_SCHEMA,
    )
    assert_same(crosswalk_of(spark, settings), expected_crosswalk)
    expected_history = spark.createDataFrame(
        [
            (pid("a1"), "created", "a1", "new person: 3 record(s) not linked before"),
            (pid("c1"), "created", "c1", "new person: 2 record(s) not linked before"),
            (pid("d0"), "created", "d0", "new person: 1 record(s) not linked before"),
        ],
        HISTORY_SCHEMA,
    )
    assert_same(history_of(spark, settings, "run-1"), expected_history)

    # The same input again: the same ids, and nothing new in the history.
    again = link(spark, settings, "run-2")
    assert dataclasses.replace(again, iterations=0) == dataclasses.replace(result, iterations=0)
    assert_same(crosswalk_of(spark, settings).drop("run_id"), expected_crosswalk.drop("run_id"))
    assert history_of(spark, settings, "run-2").count() == 0

    # A new record shares A's SSN and C's name and birth date: C's id disappears into A's (a1 < c1).
    bridge = person("x9", partner="ctc", ssn="S1", first="ANA", last="LOPEZ", birth=D1)
    write_person_records(spark, settings, [*FIRST_DELIVERY, bridge])
    merged = link(spark, settings, "run-3")
    assert dataclasses.replace(merged, iterations=0) == LinkResult(
        n_records=7, n_pairs=7, n_persons=2, n_capped_blocks=0, iterations=0, largest_cluster=6, n_candidate_pairs=7
    )
    expected_run_3 = spark.createDataFrame(
        [(pid("c1"), "merged", "c1", f"merged into {pid('a1')}: 2 of its 2 record(s) now under that person")],
        HISTORY_SCHEMA,
    )
    assert_same(history_of(spark, settings, "run-3"), expected_run_3)
    persons = crosswalk_of(spark, settings).groupBy("person_id").agg(F.count(F.lit(1)).alias("n"))
    assert_same(persons, spark.createDataFrame([(pid("a1"), 6), (pid("d0"), 1)], "person_id string, n long"))


def test_capped_block_is_reported_by_hash_and_links_nobody(spark: SparkSession, clean_mpi: Settings) -> None:
    rules = (BlockingRule(name="same_ssn", columns=("ssn_token",), max_block_size=2),)
    assert clean_mpi.matching is not None
    settings = dataclasses.replace(
        clean_mpi, matching=dataclasses.replace(clean_mpi.matching, deterministic_rules=rules)
    )
    rows = [person("h1", ssn="HOT"), person("h2", ssn="HOT"), person("h3", ssn="HOT"), person("n1")]
    write_person_records(spark, settings, rows)

    result = link(spark, settings, "run-cap")

    assert dataclasses.replace(result, iterations=0) == LinkResult(
        n_records=4, n_pairs=0, n_persons=4, n_capped_blocks=1, iterations=0, largest_cluster=1
    )
    capped = spark.read.table(settings.table("mpi", "capped_blocks"))
    expected = spark.createDataFrame(
        [("same_ssn", hashlib.sha256(b"HOT").hexdigest(), 3, "run-cap")],
        "rule string, block_key_hash string, block_size long, run_id string",
    )
    assert_same(capped, expected)


def test_link_refuses_duplicate_record_ids(spark: SparkSession, clean_mpi: Settings) -> None:
    write_person_records(spark, clean_mpi, [person("a1", ssn="S1"), person("a1", ssn="S2")])
    with pytest.raises(ValueError, match="not unique"):
        link(spark, clean_mpi, "run-dup")


def test_person_id_is_p_and_15_hex_digits_of_the_anchor_hash(spark: SparkSession) -> None:
    df = spark.createDataFrame([("a1",), ("0" * 32,), (None,)], "anchor string")
    expected = spark.createDataFrame(
        [("a1", pid("a1")), ("0" * 32, pid("0" * 32)), (None, None)], "anchor string, person_id string"
    )
    assert_same(df.withColumn("person_id", person_id(F.col("anchor"))), expected)
    assert len(pid("a1")) == 16


def test_person_id_history_events(spark: SparkSession) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    cw = "record_id string, person_id string"
    previous = spark.createDataFrame(
        [
            ("a1", "PA"),  # PA keeps a1 and absorbs all of PB: PB merged
            ("b1", "PB"),
            ("b2", "PB"),
            ("c1", "PC"),  # PC splits over PC and PC2
            ("c2", "PC"),
            ("d1", "PD"),  # PD's only record is gone: retired
            ("e1", None),  # a null person id counts as never linked
        ],
        cw,
    )
    current = spark.createDataFrame(
        [("a1", "PA"), ("b1", "PA"), ("b2", "PA"), ("c1", "PC"), ("c2", "PC2"), ("e1", "PE"), ("f1", "PF")], cw
    )
    expected = spark.createDataFrame(
        [
            ("PB", "merged", "b1", "merged into PA: 2 of its 2 record(s) now under that person"),
            ("PC", "split", "c1", "split into 2 persons: PC, PC2"),
            ("PC2", "created", "c2", "new person id for 1 record(s), 1 of them previously under PC"),
            ("PD", "retired", "d1", "retired: none of its 1 record(s) is in this run"),
            ("PE", "created", "e1", "new person: 1 record(s) not linked before"),
            ("PF", "created", "f1", "new person: 1 record(s) not linked before"),
        ],
        HISTORY_SCHEMA,
    )
    result = person_id_history(previous, current, "run-x", at)
    assert_same(result.select("person_id", "event", "record_id", "reason"), expected)
    assert result.where((F.col("run_id") != "run-x") | (F.col("recorded_at") != F.lit(at))).count() == 0


def test_record_truth_takes_the_majority_and_the_smallest_key_on_ties(spark: SparkSession) -> None:
    feed_rows = spark.createDataFrame(
        [
            ("cde", "f", "k1", "r1"),
            ("cde", "f", "k2", "r1"),
            ("cde", "f", "k3", "r1"),
            ("cde", "f", "k4", "r2"),
            ("cde", "f", "k5", "r2"),
            ("cde", "f", "k6", None),
        ],
        "partner string, feed string, record_key string, record_id string",
    )
    truth = spark.createDataFrame(
        [
            ("cde", "f", "k1", "T2"),
            ("cde", "f", "k2", "T2"),
            ("cde", "f", "k3", "T1"),
            ("cde", "f", "k4", "T9"),
            ("cde", "f", "k5", "T3"),
            ("cde", "f", "k6", "T1"),
            ("csu", "f", "k1", "T1"),  # another partner's key k1 must not vote for r1
        ],
        "partner string, feed string, record_key string, person_key string",
    )
    expected = spark.createDataFrame([("r1", "T2"), ("r2", "T3")], "record_id string, person_key string")
    assert_same(record_truth(feed_rows, truth), expected)


def test_metrics_schema_matches_the_dataclass() -> None:
    names = [column.split(" ")[0] for column in METRICS_SCHEMA.split(", ")]
    assert names == [field.name for field in dataclasses.fields(LinkageMetrics)]


def write_evaluation_example(spark: SparkSession, settings: Settings) -> None:
    """Predicted P1={r1,r2}, P2={r3,r4,r5,r6}, P4={r8}, P5={r7}; true T1={r1,r2,r3}, T2={r4,r5}, T3={r6,r8}."""
    at = datetime(2024, 1, 1, tzinfo=UTC)
    crosswalk = [
        ("r1", "P1", "cde", 2),
        ("r2", "P1", "cde", 2),
        ("r3", "P2", "cde", 4),
        ("r4", "P2", "edd", 4),
        ("r5", "P2", "edd", 4),
        ("r6", "P2", "edd", 4),
        ("r7", "P5", "edd", 1),
        ("r8", "P4", "cde", 1),
    ]
    write_table(
        spark.createDataFrame([(*row, 1.0, "eval-run", at) for row in crosswalk], CROSSWALK_SCHEMA),
        settings.table("mpi", "crosswalk"),
    )
    enrollment = [
        ("e1", 2015, "r1"),
        ("e2", 2015, "r2"),
        ("e3", 2015, "r3"),  # r3: two rows of T1 and one of T2 -> T1
        ("e4", 2016, "r3"),
        ("e5", 2017, "r3"),
        ("e6", 2015, "r8"),  # r8: one row of T4 and one of T3 -> T3 (smallest key on a tie)
        ("e7", 2016, "r8"),
        ("e8", 2016, None),  # a row without a person record
    ]
    write_table(
        spark.createDataFrame(enrollment, "enrollment_id string, school_year int, record_id string"),
        settings.table("silver", "cde_k12_enrollment"),
    )
    wages = [("w1", "r4"), ("w2", "r5"), ("w3", "r6"), ("w4", "r7")]
    write_table(
        spark.createDataFrame(wages, "wage_record_id string, record_id string"),
        settings.table("silver", "edd_ui_wages"),
    )
    truth = [
        ("cde", "k12_enrollment", "e1", "T1"),
        ("cde", "k12_enrollment", "e2", "T1"),
        ("cde", "k12_enrollment", "e3", "T1"),
        ("cde", "k12_enrollment", "e4", "T1"),
        ("cde", "k12_enrollment", "e5", "T2"),
        ("cde", "k12_enrollment", "e6", "T4"),
        ("cde", "k12_enrollment", "e7", "T3"),
        ("cde", "k12_enrollment", "e8", "T5"),
        ("edd", "ui_wages", "w1", "T2"),
        ("edd", "ui_wages", "w2", "T2"),
        ("edd", "ui_wages", "w3", "T3"),
        ("edd", "ui_wages", "w4", None),  # r7 has no known true person: left out
        ("edd", "ui_wages", "w9", "T1"),  # a key no silver row has
    ]
    spark.createDataFrame(truth, "partner string, feed string, record_key string, person_key string").write.mode(
        "overwrite"
    ).parquet(settings.storage.path("ground_truth"))


def test_evaluate_hand_checked_example(spark: SparkSession, clean_mpi: Settings) -> None:
    settings = clean_mpi
    write_evaluation_example(spark, settings)

    metrics = evaluate(spark, settings, "eval-run")

    assert metrics is not None
    # predicted pairs 1 + 6 = 7; true pairs 3 + 1 + 1 = 5; true positives (r1,r2) and (r4,r5) = 2
    expected = LinkageMetrics(
        run_id="eval-run",
        model="deterministic-baseline",
        n_records=7,
        n_persons=3,
        n_pairs_predicted=7,
        n_pairs_true=5,
        n_pairs_true_positive=2,
        precision=pytest.approx(2 / 7),  # type: ignore[arg-type]
        recall=pytest.approx(2 / 5),  # type: ignore[arg-type]
        f1=pytest.approx(1 / 3),  # type: ignore[arg-type]
        evaluated_at=metrics.evaluated_at,
        n_true_persons=3,
        n_true_persons_split=2,  # T1 over P1 and P2, T3 over P2 and P4
        n_persons_merged=1,  # P2 holds T1, T2 and T3
    )
    assert metrics == expected
    stored = spark.read.table(settings.table("mpi", "linkage_metrics")).collect()
    assert len(stored) == 1
    assert stored[0].asDict() == {**dataclasses.asdict(expected), "evaluated_at": stored[0]["evaluated_at"]}


def test_evaluate_without_ground_truth_or_when_disabled(
    spark: SparkSession, clean_mpi: Settings, tmp_path: Path
) -> None:
    write_evaluation_example(spark, clean_mpi)
    missing = dataclasses.replace(
        clean_mpi, storage=dataclasses.replace(clean_mpi.storage, ground_truth=str(tmp_path / "none"))
    )
    assert evaluate(spark, missing, "eval-run") is None
    assert clean_mpi.matching is not None
    disabled = dataclasses.replace(clean_mpi, matching=dataclasses.replace(clean_mpi.matching, evaluate=False))
    assert evaluate(spark, disabled, "eval-run") is None
    assert not spark.catalog.tableExists(clean_mpi.table("mpi", "linkage_metrics"))


def test_link_needs_matching_settings(spark: SparkSession, er_settings: Settings) -> None:
    with pytest.raises(ValueError, match="matching"):
        link(spark, dataclasses.replace(er_settings, matching=None), "run-none")
    assert isinstance(er_settings.matching, MatchingSettings)


def test_person_ids_are_inherited_across_runs(spark: SparkSession) -> None:
    """Previous persons: P-A (a1, a2, a3), P-B (b1, b2), P-C (c1), P-D (d1, d2).

    New clusters: a0 joins A's records (a smaller record_id: A keeps P-A); B and C merge (the larger side's id,
    P-B, survives); D splits into d1 and d2 (the tie goes to the smaller cluster_id, d1; d2 gets a new id); e1 is
    new. A new cluster whose derived id is still in use elsewhere is salted with the run id.
    """
    previous = spark.createDataFrame(
        [
            ("a1", "P-A"), ("a2", "P-A"), ("a3", "P-A"),
            ("b1", "P-B"), ("b2", "P-B"), ("c1", "P-C"),
            ("d1", "P-D"), ("d2", "P-D"),
        ],
        "record_id string, person_id string",
    )  # fmt: skip
    assignments = spark.createDataFrame(
        [
            ("a0", "a0"), ("a1", "a0"), ("a2", "a0"), ("a3", "a0"),
            ("b1", "b1"), ("b2", "b1"), ("c1", "b1"),
            ("d1", "d1"), ("d2", "d2"), ("e1", "e1"), (None, None),
        ],
        "record_id string, cluster_id string",
    ).where(F.col("record_id").isNotNull())  # fmt: skip
    ids = {r["cluster_id"]: r["person_id"] for r in cluster_person_ids(assignments, previous, "run-2").collect()}
    assert ids == {"a0": "P-A", "b1": "P-B", "d1": "P-D", "d2": pid("d2"), "e1": pid("e1")}

    # the same input again keeps every id
    again = assignments.join(
        spark.createDataFrame(list(ids.items()), "cluster_id string, person_id string"), on="cluster_id"
    ).select("record_id", "person_id")
    assert {r["cluster_id"]: r["person_id"] for r in cluster_person_ids(assignments, again, "run-3").collect()} == ids

    # a new cluster whose derived id is in use by another person gets a salted id
    taken = spark.createDataFrame([("x1", pid("e1"))], "record_id string, person_id string")
    salted = {r["cluster_id"]: r["person_id"] for r in cluster_person_ids(assignments, taken, "run-4").collect()}
    assert salted["e1"] == pid("e1|run-4") != pid("e1")
    assert cluster_person_ids(assignments, None, "run-1").where(F.col("person_id") != F.lit(pid("a0"))).count() == 4


def test_partner_pair_counts(spark: SparkSession) -> None:
    """True person T1 has cde k1, k2 and csu u1; T2 has csu u2. Predicted: P1 = {k1, u1, u2}, P2 = {k2}.

    cde-cde: 1 true pair (k1-k2), none predicted. cde-csu: true k1-u1, k2-u1; predicted k1-u1, k1-u2; 1 right.
    csu-csu: no true pair; predicted u1-u2 (wrong).
    """
    assignments = spark.createDataFrame(
        [
            ("k1", "P1", "T1", "cde"),
            ("k2", "P2", "T1", "cde"),
            ("u1", "P1", "T1", "csu"),
            ("u2", "P1", "T2", "csu"),
        ],
        "record_id string, person_id string, person_key string, partner string",
    )
    expected = spark.createDataFrame(
        [("cde", "cde", 0, 1, 0), ("cde", "csu", 2, 2, 1), ("csu", "csu", 1, 0, 0)],
        "partner_l string, partner_r string, n_pairs_predicted long, n_pairs_true long, n_pairs_true_positive long",
    )
    assert_same(partner_pair_counts(assignments), expected)
