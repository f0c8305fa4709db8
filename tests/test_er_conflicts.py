"""Protection against chaining: the cannot-link rule (Python and Spark), constrained merging, cluster splitting,
and the SSN variant tokens the rule reads."""

from __future__ import annotations

from datetime import date
from typing import Any

from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.er.conflicts import (
    CONFLICT_COLUMNS,
    RecordIdentity,
    cannot_link,
    constrained_groups,
    records_cannot_link,
    split_conflicts,
)
from lakehouse.silver.standardize import deletion_variants, hmac_tokenizer

D = date(1990, 5, 7)
SSN, SSN_TYPO, SSN_SWAP, SSN_OTHER = "123456789", "123456780", "123456798", "987654321"

IDENTITY_FIELDS = ("ssn", "ssid", "birth_date", "first_name", "last_name")
PERSON: dict[str, Any] = {"ssn": SSN, "ssid": None, "birth_date": D, "first_name": "ANA", "last_name": "KIM"}
NOBODY: dict[str, Any] = dict.fromkeys(IDENTITY_FIELDS)

# case -> (left, right, cannot link): the right record is the left one with the changes shown
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], bool]] = {
    "same record": (PERSON, PERSON, False),
    "different SSN, no variant shared": (PERSON, PERSON | {"ssn": SSN_OTHER, "first_name": "ZOE"}, True),
    "SSN one digit mistyped": (PERSON, PERSON | {"ssn": SSN_TYPO, "first_name": "ZOE"}, False),
    "SSN adjacent digits swapped": (PERSON, PERSON | {"ssn": SSN_SWAP, "first_name": "ZOE"}, False),
    "different SSN, same name and birth date": (PERSON, PERSON | {"ssn": SSN_OTHER}, False),
    "different SSN, same name, birth date one part off": (
        PERSON,
        PERSON | {"ssn": SSN_OTHER, "birth_date": date(1990, 5, 8)},
        True,
    ),
    "different SSN, same name, one birth date null": (PERSON, PERSON | {"ssn": SSN_OTHER, "birth_date": None}, True),
    "SSN null on one side": (PERSON, PERSON | {"ssn": None, "first_name": "ZOE"}, False),
    "birth date differs in year and month": (PERSON, PERSON | {"birth_date": date(1991, 6, 7)}, True),
    "birth date differs in every part": (PERSON, PERSON | {"birth_date": date(1985, 1, 30)}, True),
    "birth date differs in one part": (PERSON, PERSON | {"birth_date": date(1990, 5, 17)}, False),
    "birth day and month swapped": (PERSON, PERSON | {"birth_date": date(1990, 7, 5)}, False),
    "birth day and month swapped, another year": (PERSON, PERSON | {"birth_date": date(1991, 7, 5)}, True),
    "different SSID": (
        PERSON | {"ssn": None, "ssid": "A1234567"},
        PERSON | {"ssn": None, "ssid": "B7654321", "last_name": "LEE"},
        True,
    ),
    "SSID one character mistyped": (
        PERSON | {"ssn": None, "ssid": "A1234567"},
        PERSON | {"ssn": None, "ssid": "A1234568", "last_name": "LEE"},
        False,
    ),
    "different SSID, same name and birth date": (
        PERSON | {"ssn": None, "ssid": "A1234567"},
        PERSON | {"ssn": None, "ssid": "B7654321"},
        False,
    ),
    "one side all null": (PERSON, NOBODY, False),
    "both all null": (NOBODY, NOBODY, False),
}


def variants(value: str | None) -> list[str] | None:
    return deletion_variants(value) if value is not None else None


def identity(values: dict[str, Any]) -> RecordIdentity:
    return RecordIdentity(
        ssn=values["ssn"],
        ssn_variants=frozenset(variants(values["ssn"]) or ()),
        ssid=values["ssid"],
        ssid_variants=frozenset(variants(values["ssid"]) or ()),
        birth_date=values["birth_date"],
        first_name=values["first_name"],
        last_name=values["last_name"],
    )


def side_row(values: dict[str, Any]) -> list[Any]:
    """The CONFLICT_COLUMNS (but record_id) of a record."""
    ssn, ssid = values["ssn"], values["ssid"]
    return [ssn, variants(ssn), ssid, variants(ssid), values["birth_date"], values["first_name"], values["last_name"]]


SIDE_SCHEMA = (
    "{s}ssn_token string, {s}ssn_variant_tokens array<string>, {s}ssid_token string,"
    " {s}ssid_variant_tokens array<string>, {s}birth_date date, {s}first_name string, {s}last_name string"
)


def test_python_and_spark_cannot_link_agree(spark: SparkSession) -> None:
    python = {case: records_cannot_link(identity(left), identity(right)) for case, (left, right, _) in CASES.items()}
    assert python == {case: expected for case, (_, _, expected) in CASES.items()}
    # the rule is symmetric
    assert all(records_cannot_link(identity(r), identity(left)) == e for left, r, e in CASES.values())

    rows = [(case, *side_row(left), *side_row(right)) for case, (left, right, _) in CASES.items()]
    pairs = spark.createDataFrame(
        rows, f"case string, {SIDE_SCHEMA.format(s='l_')}, {SIDE_SCHEMA.format(s='r_')}"
    ).withColumn("cannot_link", cannot_link())
    expected = spark.createDataFrame(
        [(case, e) for case, (_, _, e) in CASES.items()], "case string, cannot_link boolean"
    )
    assert_df_equality(pairs.select("case", "cannot_link"), expected, ignore_row_order=True, ignore_nullable=True)
    # other prefixes name the two sides
    renamed = pairs.select(
        "case", *[F.col(c).alias(f"x_{c[2:]}" if c.startswith("l_") else f"y_{c[2:]}") for c in pairs.columns[1:-1]]
    ).withColumn("cannot_link", cannot_link("x_", "y_"))
    assert_df_equality(renamed.select("case", "cannot_link"), expected, ignore_row_order=True, ignore_nullable=True)


def test_ssn_variants_missing_on_one_side_is_no_overlap(spark: SparkSession) -> None:
    """Different SSNs whose variant tokens are unknown on one side: nothing shows a typo, so they cannot link."""
    left = identity(PERSON)
    right = RecordIdentity(SSN_TYPO, frozenset(), None, frozenset(), None, "ZOE", "LEE")
    assert records_cannot_link(left, right)
    row = (*side_row(PERSON), SSN_TYPO, None, None, None, None, "ZOE", "LEE")
    df = spark.createDataFrame([row], f"{SIDE_SCHEMA.format(s='l_')}, {SIDE_SCHEMA.format(s='r_')}")
    assert df.select(cannot_link().alias("x")).first() == (True,)


# constrained merging: A and C have different SSNs; B has none and is compatible with both
A = identity(PERSON | {"first_name": "AL"})
B = identity(PERSON | {"first_name": "BO", "ssn": None})
C = identity(PERSON | {"first_name": "CY", "ssn": SSN_OTHER})


def test_constrained_groups_refuse_the_chain_by_descending_weight() -> None:
    """A-B (20) merges first, so B-C (10) would put C with A: refused. Ids name the group by its smallest id."""
    assert records_cannot_link(A, C)
    assert not records_cannot_link(A, B)
    assert not records_cannot_link(B, C)
    records = [("r3", A), ("r2", B), ("r1", C)]
    # given in ascending weight, applied in descending weight; a link to an unknown record is ignored
    links = [("r2", "r1", 10.0), ("r3", "r2", 20.0), ("r9", "r1", 50.0)]
    assert constrained_groups(records, links) == {"r3": "r2", "r2": "r2", "r1": "r1"}
    # the other way round: B-C is the stronger link, so A is the one left apart
    links = [("r2", "r1", 20.0), ("r3", "r2", 10.0)]
    assert constrained_groups(records, links) == {"r3": "r3", "r2": "r1", "r1": "r1"}


def test_constrained_groups_check_every_member_of_both_groups() -> None:
    """D is compatible with A, but D joined C's group first: A-D would bring A to C and is refused."""
    d = identity(PERSON | {"first_name": "DI", "ssn": None})
    records = [("a", A), ("c", C), ("d", d), ("x", identity(NOBODY))]
    links = [("c", "d", 5.0), ("a", "d", 1.0), ("x", "a", 0.5)]
    assert constrained_groups(records, links) == {"a": "a", "c": "c", "d": "c", "x": "a"}
    assert constrained_groups(records, []) == {"a": "a", "c": "c", "d": "d", "x": "x"}


RECORD_SCHEMA = f"record_id string, {SIDE_SCHEMA.format(s='')}"
LINK_SCHEMA = "record_id_l string, record_id_r string, match_weight double, match_probability double"


def clustered_row(cluster_id: str | None, record_id: str, values: dict[str, Any]) -> tuple[Any, ...]:
    return (cluster_id, record_id, *side_row(values))


def clustered_records(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    """The clustered records of `rows` built as linking builds them: the records' CONFLICT_COLUMNS, left-joined
    with the component labels, a record in no component being its own cluster."""
    records = spark.createDataFrame([row[1:] for row in rows], RECORD_SCHEMA)
    components = spark.createDataFrame(
        [(row[1], row[0]) for row in rows if row[0] is not None], "record_id string, cluster_id string"
    )
    return records.join(components, on="record_id", how="left").withColumn(
        "cluster_id", F.coalesce(F.col("cluster_id"), F.col("record_id"))
    )


def test_split_conflicts(spark: SparkSession) -> None:
    """c1: a1 and a3 (different SSNs, different first names) linked only through a2 (no SSN, no birth date) are
    split; c2 (one SSN, a record with nothing) and c3 (two SSNs one typo apart) are left alone; c4 and c5 have
    more than 3 records and are rebuilt from their links of probability >= 0.999 only; g1 (nothing known, in no
    component) stays alone."""
    rows = [
        clustered_row("c1", "a1", PERSON),
        clustered_row("c1", "a2", PERSON | {"ssn": None, "birth_date": None}),
        clustered_row("c1", "a3", PERSON | {"ssn": SSN_OTHER, "first_name": "ANNA"}),
        clustered_row("c2", "b1", PERSON),
        clustered_row("c2", "b2", PERSON),
        clustered_row("c2", "b3", NOBODY),
        clustered_row("c3", "e1", PERSON),
        clustered_row("c3", "e2", PERSON | {"ssn": SSN_TYPO}),
        *[clustered_row("c4", f"d{i}", PERSON | {"ssn": None}) for i in range(1, 5)],
        *[clustered_row("c5", f"f{i}", PERSON | {"ssn": None}) for i in range(1, 5)],
        clustered_row(None, "g1", NOBODY),  # in no component: its own cluster
    ]
    clustered = clustered_records(spark, rows)
    assert set(clustered.columns) == {"cluster_id", *CONFLICT_COLUMNS}
    links = spark.createDataFrame(
        [
            ("a1", "a2", 15.0, 0.9999),
            ("a2", "a3", 12.0, 0.999),
            ("b1", "b2", 20.0, 0.99999),
            ("b2", "b3", 3.0, 0.96),
            ("e1", "e2", 18.0, 0.9999),
            ("d1", "d2", 11.0, 0.9995),
            ("d2", "d3", 7.0, 0.99),
            ("d3", "d4", 13.0, 0.9999),
            ("f1", "f2", 6.0, 0.98),
        ],
        LINK_SCHEMA,
    )
    labels, rebuilt = split_conflicts(clustered, links, max_cluster_size=3, strong_threshold=0.999)

    expected_labels = spark.createDataFrame(
        [
            ("a1", "a1"),
            ("a2", "a1"),
            ("a3", "a3"),
            ("b1", "c2"),
            ("b2", "c2"),
            ("b3", "c2"),
            ("e1", "c3"),
            ("e2", "c3"),
            ("d1", "d1"),
            ("d2", "d1"),
            ("d3", "d3"),
            ("d4", "d3"),
            ("f1", "f1"),
            ("f2", "f2"),
            ("f3", "f3"),
            ("f4", "f4"),
            ("g1", "g1"),
        ],
        "record_id string, cluster_id string",
    )
    assert_df_equality(labels, expected_labels, ignore_row_order=True, ignore_nullable=True)

    conflict = "incompatible records (different SSN, SSID or birth date)"
    expected_rebuilt = spark.createDataFrame(
        [
            ("a1", "a1", "c1", conflict),
            ("a2", "a1", "c1", conflict),
            ("a3", "a3", "c1", conflict),
            *[(f"d{i}", "d1" if i < 3 else "d3", "c4", "oversized") for i in range(1, 5)],
            *[(f"f{i}", f"f{i}", "c5", "oversized") for i in range(1, 5)],
        ],
        "record_id string, cluster_id string, old_cluster_id string, reason string",
    )
    oversized = F.col("reason").startswith("more than the maximum cluster size") & F.col("reason").endswith(
        "rebuilt from strong links"
    )
    actual_rebuilt = rebuilt.withColumn("reason", F.when(oversized, F.lit("oversized")).otherwise(F.col("reason")))
    assert_df_equality(
        actual_rebuilt, expected_rebuilt, ignore_row_order=True, ignore_column_order=True, ignore_nullable=True
    )

    # The same clusters as a plain table (cluster_id an ordinary column, as when read back) give the same labels.
    plain = spark.createDataFrame(clustered.collect(), clustered.schema)
    plain_labels, _ = split_conflicts(plain, links, max_cluster_size=3, strong_threshold=0.999)
    assert_df_equality(plain_labels, expected_labels, ignore_row_order=True, ignore_nullable=True)


def test_hmac_variants_overlap_for_one_typo_only(spark: SparkSession) -> None:
    """Keyed deletion-variant tokens: shared by SSNs one substitution or one adjacent swap apart, not by unrelated
    SSNs, nor across namespaces; null stays null."""
    tokenizer = hmac_tokenizer(b"test-only-variant-key")
    df = spark.createDataFrame(
        [
            ("substitution", SSN, SSN_TYPO),
            ("adjacent swap", SSN, SSN_SWAP),
            ("unrelated", SSN, SSN_OTHER),
            ("two substitutions", SSN, "123456700"),
            ("null", SSN, None),
        ],
        "case string, a string, b string",
    ).select(
        "case",
        tokenizer.variants("a", "ssn").alias("va"),
        tokenizer.variants("b", "ssn").alias("vb"),
        tokenizer.variants("a", "ssid").alias("va_ssid"),
        F.arrays_overlap(tokenizer.variants("a", "ssn"), tokenizer.variants("b", "ssn")).alias("overlap"),
    )
    rows = {row["case"]: row for row in df.collect()}
    shared = {case: set(row["va"]) & set(row["vb"] or ()) for case, row in rows.items()}
    assert {case: bool(tokens) for case, tokens in shared.items()} == {
        "substitution": True,
        "adjacent swap": True,
        "unrelated": False,
        "two substitutions": False,
        "null": False,
    }
    assert {case: row["overlap"] for case, row in rows.items()} == {
        "substitution": True,
        "adjacent swap": True,
        "unrelated": False,
        "two substitutions": False,
        "null": None,
    }
    assert rows["null"]["vb"] is None
    tokens = rows["unrelated"]["va"]
    assert len(tokens) == len(deletion_variants(SSN)) == 9
    assert tokens == sorted(tokens)
    assert all(len(t) == 32 and int(t, 16) >= 0 for t in tokens)
    assert not set(tokens) & set(rows["unrelated"]["va_ssid"])  # namespaces keep SSN and SSID variants apart
