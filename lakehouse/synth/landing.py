"""Writing the generator's delivery files: stable file names, no Spark leftovers, manifest entries.

Spark writes each file's lines (partitioned by file index, sorted within the file); the part files are
renamed `<feed>_0000.<ext>`, `<feed>_0001.<ext>`, ...; Spark's own folder with `_SUCCESS` and `.crc` files
is removed; then each file is read once on the driver, streaming, for its size, SHA-256 and row count.
The manifest is written last (`lakehouse.landing.write_manifest`).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import FeedConfig
from lakehouse.landing import Store

SPARK_OUTPUT = "_spark_output"


def write_files(
    spark: SparkSession,
    lines: DataFrame,
    feed: FeedConfig,
    *,
    folder: str,
    n_files: int,
    header: str | None,
    store: Store,
) -> list[dict[str, Any]]:
    """Write `lines` (line, file_index, record_key) as the data files of `folder`; their manifest entries.

    Each file gets the header first (CSV) and its rows sorted by record key, so the bytes depend only on the
    rows. Returns one {"name", "bytes", "sha256", "rows"} per file, in name order.
    """
    frame = lines.select("line", "file_index", F.col("record_key").alias("_order"))
    if header is not None:
        headers = spark.range(n_files).select(
            F.lit(header).alias("line"), F.col("id").cast("int").alias("file_index"), F.lit("").alias("_order")
        )
        frame = headers.unionByName(frame)
    output = f"{folder}/{SPARK_OUTPUT}"
    (
        frame.repartition(n_files, "file_index")
        .sortWithinPartitions("file_index", "_order")
        .select("line", "file_index")
        .write.partitionBy("file_index")
        .text(output)
    )
    partitions = sorted(
        (int(name.split("=", 1)[1]), name)
        for name, is_dir in store.list_dir(output)
        if is_dir and name.startswith("file_index=")
    )
    names: list[str] = []
    for _index, directory in partitions:
        parts = [n for n, is_dir in store.list_dir(f"{output}/{directory}") if not is_dir and n.startswith("part-")]
        if len(parts) != 1:
            raise RuntimeError(f"{output}/{directory}: expected one part file, found {len(parts)}")
        name = f"{feed.name}_{len(names):04d}.{feed.file_extension}"
        store.rename(f"{output}/{directory}/{parts[0]}", f"{folder}/{name}")
        names.append(name)
    store.delete(output)
    if not names:
        name = f"{feed.name}_0000.{feed.file_extension}"
        store.write_text(f"{folder}/{name}", "" if header is None else header + "\n")
        names.append(name)
    entries = []
    for name in names:
        digest = store.digest(f"{folder}/{name}")
        rows = digest.data_rows(header is not None)
        entries.append({"name": name, "bytes": digest.bytes, "sha256": digest.sha256, "rows": rows})
    return entries
