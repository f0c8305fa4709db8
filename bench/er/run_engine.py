"""Our entity-resolution engine on the benchmark's records: clusters plus the time and memory of each step.

Runs in the project's .venv, one engine per process, e.g.

    .venv/bin/python bench/er/run_engine.py --input records.parquet --engine probabilistic --out /tmp/ours

Engines:
- probabilistic: lakehouse.er.linking.probabilistic_linkage with conf/matching.yaml (blocking, a Fellegi-Sunter
  model trained without labels, scoring, links at model.threshold, connected components, conflict splits);
- deterministic: the foundation's baseline, every pair of matching.deterministic_rules is a match
  (lakehouse.er.blocking.block, then connected components); records in no pair are clusters of their own.

Input: a parquet file (or directory) with the silver.person_records matching columns (record_id, partner,
first_name, middle_name, last_name, birth_date, gender, zip5, ssn_token, ssid_token, ssn_variant_tokens,
ssid_variant_tokens); any other column (true_person) is never read.

Output, in --out: clusters.parquet (record_id, cluster_id as strings; one row per input record), timings.json
(the shape of splink/run_splink.py's: sizes, seconds and CPU seconds per step, peak memory of the process tree
including the JVM, machine) and, for the probabilistic engine, model.json. The Spark session gets a storage root
of its own under --out (warehouse, Derby metastore, checkpoints), removed at the end, so that two runs, or a run
and the project's own ./data, never share a metastore.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from export_records import RECORD_COLUMNS
from measure import ProcessTreeMonitor, Stopwatch, machine_info

log = logging.getLogger("run_engine")

Engine = Literal["probabilistic", "deterministic"]

"""Columns given to the engine: those of silver.person_records it reads. true_person never is."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, required=True, help="records parquet file or directory")
    parser.add_argument("--engine", choices=["probabilistic", "deterministic"], required=True)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--env", default="local", help="conf/env/<env>.yaml of the session (default: local)")
    parser.add_argument("--keep-intermediate", action="store_true", help="keep the scratch storage root under --out")
    args = parser.parse_args(argv)
    if not args.input.exists():
        parser.error(f"--input {args.input} does not exist")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    engine: Engine = args.engine
    storage = out / "lakehouse-storage"
    shutil.rmtree(storage, ignore_errors=True)
    # Set before the settings load: the session's warehouse, Derby metastore and checkpoints go there.
    os.environ["LAKEHOUSE_STORAGE_ROOT"] = str(storage)
    load_before = os.getloadavg()
    started = time.time()

    with ProcessTreeMonitor() as monitor:
        watch = Stopwatch(monitor, log)
        with watch.step("startup"):
            # Imported here so that the JVM start and the import of pyspark count as start-up.
            from pyspark.sql import DataFrame
            from pyspark.sql import functions as F

            import lakehouse
            from lakehouse.config import load_settings
            from lakehouse.er.blocking import block
            from lakehouse.er.components import connected_components
            from lakehouse.er.linking import matching_settings, probabilistic_linkage
            from lakehouse.session import build_session

            settings = load_settings(args.env)
            matching = matching_settings(settings)
            spark = build_session(settings)
        extra: dict[str, Any] = {}
        try:
            with watch.step("load"):
                records = spark.read.parquet(str(args.input)).select(*RECORD_COLUMNS).persist()
                n_records = records.count()
            with watch.step("link"):
                labels: DataFrame
                if engine == "probabilistic":
                    linkage = probabilistic_linkage(records, matching)
                    labels = linkage.labels
                else:
                    blocking = block(records, matching.deterministic_rules)
                    # The pipeline writes the matched pairs to a table and reads them back; a local checkpoint
                    # cuts the lineage the same way without a table.
                    pairs = blocking.pairs.localCheckpoint(eager=True)
                    components = connected_components(pairs, matching.clustering.max_iterations)
                    # Components label linked records only: every other record is a cluster of its own.
                    labels = records.select("record_id").join(components.labels, on="record_id", how="left")
                # Collecting the ids forces whatever is still lazy inside this step (as run_splink.py does).
                clusters: pa.Table = labels.select(
                    F.col("record_id").cast("string").alias("record_id"),
                    F.coalesce(F.col("cluster_id"), F.col("record_id")).cast("string").alias("cluster_id"),
                ).toArrow()
            with watch.step("write"):
                pq.write_table(clusters, out / "clusters.parquet")

            # Counts and the model, outside the timed steps.
            if engine == "probabilistic":
                n_pairs_scored = int(linkage.n_candidate_pairs)
                extra = {
                    "n_links": linkage.links.count(),
                    "n_capped_blocks": linkage.capped.count(),
                    "components_iterations": linkage.iterations,
                    "step_seconds": linkage.step_seconds,
                    "prior": linkage.model.prior,
                    "threshold": matching.model.threshold,
                }
                (out / "model.json").write_text(linkage.model.to_json() + "\n")
            else:
                n_pairs_scored = pairs.count()
                extra = {
                    "n_links": n_pairs_scored,
                    "n_capped_blocks": blocking.capped.count(),
                    "components_iterations": components.iterations,
                    "rules": [rule.name for rule in matching.deterministic_rules],
                }
            jvm = spark.sparkContext._jvm
            versions = {
                "pyspark_version": spark.version,
                "java_version": str(jvm.java.lang.System.getProperty("java.version")) if jvm is not None else "unknown",
            }
        finally:
            spark.stop()

    if clusters.num_rows != n_records:
        raise RuntimeError(f"clusters.parquet has {clusters.num_rows} rows for {n_records} records")
    if len(pc.unique(clusters.column("record_id"))) != n_records:
        raise RuntimeError("clusters.parquet repeats a record_id")

    seconds = dict(watch.seconds)
    cpu_seconds = dict(watch.cpu_seconds)
    for measure in (seconds, cpu_seconds):
        measure["total"] = measure["link"]

    timings: dict[str, Any] = {
        "engine": engine,
        "lakehouse_version": lakehouse.__version__,
        "n_records": n_records,
        "n_pairs_scored": n_pairs_scored,
        "n_clusters": len(pc.unique(clusters.column("cluster_id"))),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mb": monitor.peak_mb(),
        **extra,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine_info(load_before),
        **versions,
        "spark": {
            "master": settings.spark.master,
            "driver_memory": settings.spark.driver_memory,
            "shuffle_partitions": settings.spark.shuffle_partitions,
        },
    }
    if not args.keep_intermediate:
        shutil.rmtree(storage, ignore_errors=True)
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    return timings


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "mlflow", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    timings = run(parse_args(argv))
    print(json.dumps(timings, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
