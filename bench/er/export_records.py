"""Export silver.person_records with each record's true person, as the benchmark's input (one parquet file).

Runs in the project's .venv against the storage root in $LAKEHOUSE_STORAGE_ROOT (generated, then built through
bronze and silver), e.g.

    LAKEHOUSE_STORAGE_ROOT=$PWD/bench/er/work/people-1000-seed-7 LAKEHOUSE_HMAC_KEY=... \
        .venv/bin/python bench/er/export_records.py --out bench/er/work/people-1000-seed-7/records.parquet

Columns: the matching columns of silver.person_records (record_id, partner, names, birth_date, gender, zip5, the
SSN and SSID tokens and their variant tokens) and true_person: the generator's person key that most of the
record's feed rows belong to (lakehouse.er.evaluation.record_truth); null when no feed row has ground truth.
Prints a JSON line with the counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from pyspark.sql import functions as F

from lakehouse.config import load_settings
from lakehouse.er.evaluation import feed_records, read_ground_truth, record_truth
from lakehouse.session import build_session

log = logging.getLogger("export_records")

RECORD_COLUMNS = (
    "record_id",
    "partner",
    "first_name",
    "middle_name",
    "last_name",
    "birth_date",
    "gender",
    "zip5",
    "ssn_token",
    "ssid_token",
    "ssn_variant_tokens",
    "ssid_variant_tokens",
)
"""The silver.person_records columns the benchmark's systems may read (Splink reads a subset)."""


def export(out: Path, env: str) -> dict[str, int]:
    settings = load_settings(env)
    spark = build_session(settings)
    try:
        records = spark.read.table(settings.table("silver", "person_records")).select(*RECORD_COLUMNS)
        feed_rows = feed_records(spark, settings)
        truth = read_ground_truth(spark, settings.storage.path("ground_truth"))
        if feed_rows is None or truth is None:
            raise RuntimeError(f"no silver feed tables or no ground truth under {settings.storage.root}")
        labelled = records.join(
            record_truth(feed_rows, truth).withColumnRenamed("person_key", "true_person"), on="record_id", how="left"
        ).select(*RECORD_COLUMNS, "true_person")
        scratch = out.with_name(out.name + ".spark")
        shutil.rmtree(scratch, ignore_errors=True)
        labelled.orderBy("record_id").coalesce(1).write.mode("overwrite").parquet(str(scratch))
        row = (
            spark.read.parquet(str(scratch))
            .agg(
                F.count(F.lit(1)).alias("n_records"),
                F.count_distinct("record_id").alias("n_ids"),
                F.count_if(F.col("true_person").isNull()).alias("n_without_truth"),
                F.count_distinct("true_person").alias("n_true_persons"),
            )
            .first()
        )
    finally:
        spark.stop()
    if row is None or int(row["n_ids"]) != int(row["n_records"]):
        raise RuntimeError("the exported record_ids are not unique")
    parts = sorted(scratch.glob("part-*.parquet"))
    if len(parts) != 1:
        raise RuntimeError(f"expected one parquet part in {scratch}, found {len(parts)}")
    out.unlink(missing_ok=True)
    parts[0].replace(out)
    shutil.rmtree(scratch)
    return {k: int(row[k]) for k in ("n_records", "n_without_truth", "n_true_persons")}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="parquet file to write")
    parser.add_argument("--env", default="local", help="conf/env/<env>.yaml (default: local)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    counts = export(args.out.resolve(), args.env)
    log.info("exported %s", counts)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
