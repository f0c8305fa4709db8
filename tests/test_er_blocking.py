"""Blocking: rule order, null keys, capped blocks."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from lakehouse.config import BlockingRule
from lakehouse.er.blocking import KEY_SEPARATOR, analyze_blocking, block, block_key_hash, render_analysis

RECORD_SCHEMA = "record_id string, ssn_token string, first_name string, last_name string, birth_date date"
PAIR_SCHEMA = "record_id_l string, record_id_r string, rule string"
CAPPED_SCHEMA = "rule string, block_key_hash string, block_size long"

SSN = BlockingRule(name="same_ssn", columns=("ssn_token",), max_block_size=3)
NAME_DOB = BlockingRule(
    name="same_name_and_birth_date", columns=("first_name", "last_name", "birth_date"), max_block_size=3
)
D1, D2 = date(2001, 2, 3), date(1999, 12, 31)


def sha(*values: str) -> str:
    return hashlib.sha256(KEY_SEPARATOR.join(values).encode("utf-8")).hexdigest()


def test_pairs_are_labelled_with_the_first_rule_and_nulls_never_block(spark: SparkSession) -> None:
    records = spark.createDataFrame(
        [
            ("r01", "S1", "ANA", "LOPEZ", D1),  # r01-r02: both rules; only same_ssn may report it
            ("r02", "S1", "ANA", "LOPEZ", D1),
            ("r03", "S2", "BO", "KIM", D2),  # r03-r04: name and birth date only
            ("r04", None, "BO", "KIM", D2),
            ("r05", None, None, "KIM", D2),  # null first name: never blocks by name
            ("r06", None, None, "KIM", D2),
            ("r07", None, "CY", None, None),  # all-null keys
            ("r08", None, "CY", None, None),
            (None, None, None, None, None),  # a null row
        ],
        RECORD_SCHEMA,
    )
    result = block(records.where("record_id is not null"), [SSN, NAME_DOB])
    expected = spark.createDataFrame(
        [("r01", "r02", "same_ssn"), ("r03", "r04", "same_name_and_birth_date")], PAIR_SCHEMA
    )
    assert_df_equality(result.pairs, expected, ignore_row_order=True, ignore_nullable=True)
    assert result.capped.count() == 0


def test_rule_order_decides_the_label(spark: SparkSession) -> None:
    records = spark.createDataFrame(
        [("r1", "S1", "ANA", "LOPEZ", D1), ("r2", "S1", "ANA", "LOPEZ", D1), ("r3", None, None, None, None)],
        RECORD_SCHEMA,
    )
    result = block(records, [NAME_DOB, SSN])
    expected = spark.createDataFrame([("r1", "r2", "same_name_and_birth_date")], PAIR_SCHEMA)
    assert_df_equality(result.pairs, expected, ignore_row_order=True, ignore_nullable=True)


def test_oversized_blocks_are_capped_reported_and_left_to_later_rules(spark: SparkSession) -> None:
    records = spark.createDataFrame(
        [
            # ssn block of 4 > 3: capped for same_ssn; r1-r2 still pair by name and birth date
            ("r1", "HOT", "ANA", "LOPEZ", D1),
            ("r2", "HOT", "ANA", "LOPEZ", D1),
            ("r3", "HOT", "BO", "KIM", D2),
            ("r4", "HOT", "CY", "DIAZ", D2),
            # ssn block of exactly 3: kept
            ("r5", "S3", "DEE", "ROSS", D1),
            ("r6", "S3", None, "ROSS", D1),
            ("r7", "S3", None, None, None),
            # name/dob block of 4 > 3: capped for that rule
            ("r8", None, "EVA", "CRUZ", D2),
            ("r9", None, "EVA", "CRUZ", D2),
            ("ra", None, "EVA", "CRUZ", D2),
            ("rb", None, "EVA", "CRUZ", D2),
            ("rc", None, None, None, None),
        ],
        RECORD_SCHEMA,
    )
    result = block(records, [SSN, NAME_DOB])
    expected_pairs = spark.createDataFrame(
        [
            ("r1", "r2", "same_name_and_birth_date"),
            ("r5", "r6", "same_ssn"),
            ("r5", "r7", "same_ssn"),
            ("r6", "r7", "same_ssn"),
        ],
        PAIR_SCHEMA,
    )
    assert_df_equality(result.pairs, expected_pairs, ignore_row_order=True, ignore_nullable=True)
    expected_capped = spark.createDataFrame(
        [
            ("same_ssn", sha("HOT"), 4),
            ("same_name_and_birth_date", sha("EVA", "CRUZ", "1999-12-31"), 4),
        ],
        CAPPED_SCHEMA,
    )
    assert_df_equality(result.capped, expected_capped, ignore_row_order=True, ignore_nullable=True)


def test_block_key_hash_never_hashes_a_partial_key(spark: SparkSession) -> None:
    df = spark.createDataFrame([("ANA", "LOPEZ"), ("ANA", None), (None, None)], "first_name string, last_name string")
    expected = spark.createDataFrame(
        [("ANA", "LOPEZ", sha("ANA", "LOPEZ")), ("ANA", None, None), (None, None, None)],
        "first_name string, last_name string, block_key_hash string",
    )
    result = df.withColumn("block_key_hash", block_key_hash(["first_name", "last_name"]))
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_bad_rules_are_refused(spark: SparkSession) -> None:
    records = spark.createDataFrame([("r1", None, None, None, None)], RECORD_SCHEMA)
    with pytest.raises(ValueError, match="lack: zip3"):
        block(records, [BlockingRule(name="zip", columns=("zip3",))])
    with pytest.raises(ValueError, match="unique"):
        block(records, [SSN, SSN])
    with pytest.raises(ValueError, match="at least 2"):
        block(records, [BlockingRule(name="tiny", columns=("ssn_token",), max_block_size=1)])


def test_no_rules_no_pairs(spark: SparkSession) -> None:
    records = spark.createDataFrame([("r1", "S1", None, None, None), ("r2", "S1", None, None, None)], RECORD_SCHEMA)
    result = block(records, [])
    assert result.pairs.count() == 0
    assert result.capped.count() == 0


def test_analysis_counts_pairs_new_pairs_and_capped_blocks(spark: SparkSession) -> None:
    """SSN block S1 (4 records) is above the cap of 3, S2 holds r5-r6; the name and birth date blocks hold r1-r3
    (3 pairs, all new since S1 is capped) and r5-r6 (already an SSN pair)."""
    records = spark.createDataFrame(
        [
            ("r1", "S1", "ANA", "LOPEZ", D1),
            ("r2", "S1", "ANA", "LOPEZ", D1),
            ("r3", "S1", "ANA", "LOPEZ", D1),
            ("r4", "S1", None, None, None),
            ("r5", "S2", "BO", "KIM", D2),
            ("r6", "S2", "BO", "KIM", D2),
            ("r7", None, None, None, None),  # a null row (no key of any rule)
        ],
        RECORD_SCHEMA,
    )
    ssn, name_dob = analyze_blocking(records, [SSN, NAME_DOB], top=2)
    assert (ssn.keyed_records, ssn.blocks, ssn.raw_pairs, ssn.new_pairs) == (6, 2, 1, 1)
    assert (ssn.capped_blocks, ssn.capped_records) == (1, 4)
    assert [size for _, size in ssn.largest_blocks] == [4, 2]
    assert ssn.largest_blocks[0][0] == sha("S1")[:12]
    assert (name_dob.keyed_records, name_dob.blocks, name_dob.raw_pairs, name_dob.new_pairs) == (5, 2, 4, 3)
    assert name_dob.capped_blocks == 0
    text = render_analysis([ssn, name_dob])
    assert "same_ssn" in text and "candidate pairs in all: 4" in text
