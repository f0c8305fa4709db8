"""Writing one delivery into the landing zone: stable file names, no Spark leftovers, a checked manifest.

Spark writes each file's lines (partitioned by file index, sorted within the file); the part files are
renamed `<feed>_0000.<ext>`, `<feed>_0001.<ext>`, ...; Spark's own folder with `_SUCCESS` and `.crc` files
is removed; then each file is read once on the driver, streaming, for its size, SHA-256 and row count,
and `_manifest.json` is written last. Local folders use plain file operations; any other URI (s3a://...)
goes through Hadoop's FileSystem in the JVM.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import FeedConfig

logger = logging.getLogger(__name__)

SPARK_OUTPUT = "_spark_output"
MANIFEST = "_manifest.json"
CHUNK = 8 << 20


@dataclass(frozen=True)
class FileDigest:
    """Size in bytes, SHA-256 (hex) and number of '\\n'-terminated lines of one file."""

    bytes: int
    sha256: str
    lines: int


class Store(Protocol):
    """The few file operations a delivery needs."""

    def exists(self, path: str) -> bool: ...

    def list_dir(self, path: str) -> list[tuple[str, bool]]: ...

    def rename(self, source: str, target: str) -> None: ...

    def delete(self, path: str) -> None: ...

    def write_text(self, path: str, text: str) -> None: ...

    def digest(self, path: str) -> FileDigest: ...


def _local(path: str) -> Path:
    if path.startswith("file://"):
        return Path(path[len("file://") :])
    if path.startswith("file:"):
        return Path(path[len("file:") :])
    return Path(path)


class LocalStore:
    """A local folder (a plain path or a file: URI)."""

    def exists(self, path: str) -> bool:
        return _local(path).exists()

    def list_dir(self, path: str) -> list[tuple[str, bool]]:
        return sorted((p.name, p.is_dir()) for p in _local(path).iterdir())

    def rename(self, source: str, target: str) -> None:
        os.replace(_local(source), _local(target))

    def delete(self, path: str) -> None:
        local = _local(path)
        if local.is_dir():
            shutil.rmtree(local)
        elif local.exists():
            local.unlink()

    def write_text(self, path: str, text: str) -> None:
        local = _local(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(text.encode("utf-8"))

    def digest(self, path: str) -> FileDigest:
        sha, size, lines = hashlib.sha256(), 0, 0
        with _local(path).open("rb") as handle:
            while chunk := handle.read(CHUNK):
                sha.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
        return FileDigest(size, sha.hexdigest(), lines)


class HadoopStore:
    """Any Hadoop-supported URI (s3a://, hdfs://, ...) through the session's JVM."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm: Any = spark._jvm  # the only way to Hadoop's FileSystem from Python
        self._conf: Any = spark._jsc.hadoopConfiguration()  # type: ignore[union-attr]

    def _resolve(self, path: str) -> tuple[Any, Any]:
        jpath = self._jvm.org.apache.hadoop.fs.Path(path)
        return jpath.getFileSystem(self._conf), jpath

    def exists(self, path: str) -> bool:
        fs, jpath = self._resolve(path)
        return bool(fs.exists(jpath))

    def list_dir(self, path: str) -> list[tuple[str, bool]]:
        fs, jpath = self._resolve(path)
        return sorted((s.getPath().getName(), bool(s.isDirectory())) for s in fs.listStatus(jpath))

    def rename(self, source: str, target: str) -> None:
        fs, jsource = self._resolve(source)
        if not fs.rename(jsource, self._jvm.org.apache.hadoop.fs.Path(target)):
            raise OSError(f"could not rename {source} to {target}")

    def delete(self, path: str) -> None:
        fs, jpath = self._resolve(path)
        fs.delete(jpath, True)

    def write_text(self, path: str, text: str) -> None:
        fs, jpath = self._resolve(path)
        stream = fs.create(jpath, True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def digest(self, path: str) -> FileDigest:
        fs, jpath = self._resolve(path)
        length = int(fs.getFileStatus(jpath).getLen())
        sha, lines, done = hashlib.sha256(), 0, 0
        stream = fs.open(jpath)
        try:
            while done < length:
                n = min(CHUNK, length - done)
                chunk = bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream, n))
                sha.update(chunk)
                lines += chunk.count(b"\n")
                done += n
        finally:
            stream.close()
        return FileDigest(length, sha.hexdigest(), lines)


def store_for(spark: SparkSession, path: str) -> Store:
    """A LocalStore for local paths, a HadoopStore for other URIs."""
    if "://" not in path or path.startswith("file:"):
        return LocalStore()
    return HadoopStore(spark)


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
        rows = digest.lines - (1 if header is not None else 0)
        entries.append({"name": name, "bytes": digest.bytes, "sha256": digest.sha256, "rows": rows})
    return entries


def write_manifest(
    store: Store, folder: str, feed: FeedConfig, delivery_id: str, files: list[dict[str, Any]]
) -> dict[str, Any]:
    """Write `_manifest.json` of the delivery in `folder` (last, so its presence means the delivery is complete)."""
    manifest = {
        "partner": feed.partner,
        "feed": feed.name,
        "delivery_id": delivery_id,
        "delivered_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "format": feed.format,
        "encoding": feed.encoding,
        "files": files,
    }
    store.write_text(f"{folder}/{MANIFEST}", json.dumps(manifest, indent=2) + "\n")
    return manifest
