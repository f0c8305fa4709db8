"""The landing zone from the delivering side: where files are written, and the manifest that describes them.

A delivery is `<landing>/<partner>/<feed>/<delivery_id>/`: its data files, then `_manifest.json`, written last
(bronze reads a folder without a manifest as a delivery still being copied). The manifest lists each file with
its size, SHA-256 and data rows; bronze checks every file against it.

Stores: a local folder (plain file operations), any Hadoop URI through the Spark session's JVM (the generator,
which already has a session), and S3 through boto3 (`lakehouse deliver`, which needs no Spark at all).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pyspark.sql import SparkSession

from lakehouse.config import FeedConfig, S3Settings, Settings

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""Delivery ids and file names: letters, digits, dot, dash, underscore; no leading dot or underscore."""
CHUNK = 8 << 20


@dataclass(frozen=True)
class FileDigest:
    """Size in bytes, SHA-256 (hex) and number of lines of one file (a last line without "\\n" is one)."""

    bytes: int
    sha256: str
    lines: int

    def data_rows(self, header: bool) -> int:
        """Rows the manifest states: the lines, less the header line of a CSV file that has one."""
        return max(self.lines - 1, 0) if header else self.lines


class _Digester:
    """Size, SHA-256 and lines of a stream of chunks; a last line without "\\n" is a line, as Spark reads it."""

    def __init__(self) -> None:
        self.sha, self.size, self.newlines, self.last = hashlib.sha256(), 0, 0, b"\n"

    def update(self, chunk: bytes) -> None:
        if chunk:
            self.sha.update(chunk)
            self.size += len(chunk)
            self.newlines += chunk.count(b"\n")
            self.last = chunk[-1:]

    def result(self) -> FileDigest:
        return FileDigest(self.size, self.sha.hexdigest(), self.newlines + (self.last != b"\n"))


class Writer(Protocol):
    """What writing a manifest into a delivery folder needs."""

    def exists(self, path: str) -> bool: ...

    def write_text(self, path: str, text: str) -> None: ...


class Store(Writer, Protocol):
    """The file operations the generator needs to lay out a delivery written by Spark."""

    def list_dir(self, path: str) -> list[tuple[str, bool]]: ...

    def rename(self, source: str, target: str) -> None: ...

    def delete(self, path: str) -> None: ...

    def digest(self, path: str) -> FileDigest: ...


class Uploader(Writer, Protocol):
    """What `deliver` needs: a partner's local files uploaded, then the manifest."""

    def upload(self, source: Path, path: str) -> None: ...


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
        digester = _Digester()
        with _local(path).open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digester.update(chunk)
        return digester.result()

    def upload(self, source: Path, path: str) -> None:
        target = _local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


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
        digester, done = _Digester(), 0
        stream = fs.open(jpath)
        try:
            while done < length:
                n = min(CHUNK, length - done)
                digester.update(bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream, n)))
                done += n
        finally:
            stream.close()
        return digester.result()


class S3Store:
    """S3 through boto3 (s3:// or s3a:// URIs), as `deliver` uses it: endpoint and region from conf `s3`,
    credentials from the AWS chain."""

    def __init__(self, s3: S3Settings) -> None:
        import boto3
        from botocore.config import Config

        addressing = "path" if s3.path_style else "auto"
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=s3.endpoint_url() or None,
            region_name=s3.region,
            config=Config(s3={"addressing_style": addressing}, retries={"mode": "standard"}),
        )

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        """(bucket, key) of s3a://bucket/key."""
        scheme, _, rest = path.partition("://")
        if scheme not in ("s3", "s3a") or not rest:
            raise ValueError(f"{path}: not an s3:// or s3a:// URI")
        bucket, _, key = rest.partition("/")
        return bucket, key.strip("/")

    def exists(self, path: str) -> bool:
        """True when `path` is an object or a prefix of one (a folder)."""
        bucket, key = self._split(path)
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError:
            listed = self._client.list_objects_v2(Bucket=bucket, Prefix=f"{key}/" if key else "", MaxKeys=1)
            return int(listed.get("KeyCount", 0)) > 0

    def write_text(self, path: str, text: str) -> None:
        bucket, key = self._split(path)
        self._client.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"))

    def upload(self, source: Path, path: str) -> None:
        """Upload one local file (multipart above 8 MB, as boto3's transfer manager does)."""
        bucket, key = self._split(path)
        self._client.upload_file(str(source), bucket, key)


def store_for(spark: SparkSession, path: str) -> Store:
    """A LocalStore for local paths, a HadoopStore for other URIs."""
    if "://" not in path or path.startswith("file:"):
        return LocalStore()
    return HadoopStore(spark)


def write_manifest(
    store: Writer,
    folder: str,
    feed: FeedConfig,
    delivery_id: str,
    files: list[dict[str, Any]],
    *,
    replaces: str | None = None,
) -> dict[str, Any]:
    """Write `_manifest.json` of the delivery in `folder` (last, so its presence means the delivery is complete).

    `replaces` names an earlier delivery of the same feed that this one corrects (all its rows, not a patch).
    """
    manifest: dict[str, Any] = {
        "partner": feed.partner,
        "feed": feed.name,
        "delivery_id": delivery_id,
        "delivered_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "format": feed.format,
        "encoding": feed.encoding,
        "files": files,
    }
    if replaces:
        manifest["replaces"] = replaces
    store.write_text(f"{folder}/{MANIFEST}", json.dumps(manifest, indent=2) + "\n")
    return manifest


# --------------------------------------------------------------------------------------------------
# `lakehouse deliver`


@dataclass(frozen=True)
class Delivery:
    """A delivery written into landing: its folder, id and manifest."""

    folder: str
    delivery_id: str
    manifest: dict[str, Any]

    @property
    def rows(self) -> int:
        return sum(int(f["rows"]) for f in self.manifest["files"])


def new_delivery_id() -> str:
    """A delivery id from the current UTC time, to the second: d20261129T114501Z."""
    return datetime.now(UTC).strftime("d%Y%m%dT%H%M%SZ")


def landing_store(settings: Settings) -> Uploader:
    """Where `lakehouse deliver` writes: S3 through boto3 for an s3a:// or s3:// landing, else the local folder."""
    landing = settings.storage.path("landing")
    if landing.startswith(("s3a://", "s3://")):
        return S3Store(settings.s3)
    if "://" in landing and not landing.startswith("file:"):
        raise ValueError(f"storage.landing is {landing}: `lakehouse deliver` writes to S3 or a local folder only")
    return LocalStore()


def deliver(
    settings: Settings,
    partner: str,
    feed_name: str,
    files: list[Path],
    *,
    delivery_id: str | None = None,
    replaces: str | None = None,
    store: Uploader | None = None,
) -> Delivery:
    """Put `files` into landing as one delivery of `partner`'s `feed_name`, with its manifest, written last.

    What a partner's transfer does: each file's size, SHA-256 and data rows are taken from the local file,
    the files are uploaded under `<landing>/<partner>/<feed>/<delivery_id>/` with their own names, and then
    `_manifest.json`. Refuses (ValueError, FileExistsError) an unknown partner or feed, a missing file, a
    file name that is not plain or is given twice, and a delivery id that landing already holds: a
    correction is a new delivery, whose manifest names the delivery it `replaces` (bronze checks that one
    was ingested).
    """
    partners = {p.name: p for p in settings.partners}
    if partner not in partners:
        raise ValueError(f"unknown partner {partner!r}: conf/partners has {', '.join(sorted(partners))}")
    feeds = {f.name: f for f in partners[partner].feeds}
    if feed_name not in feeds:
        raise ValueError(f"partner {partner} has no feed {feed_name!r}: its feeds are {', '.join(sorted(feeds))}")
    feed = feeds[feed_name]
    delivery = delivery_id or new_delivery_id()
    for value in (delivery, replaces):
        if value is not None and not SAFE_NAME.match(value):
            raise ValueError(f"delivery id {value!r}: use letters, digits, '.', '-' and '_' only")
    if replaces == delivery:
        raise ValueError(f"delivery {delivery} cannot replace itself")
    if not files:
        raise ValueError("no files to deliver")
    names = [f.name for f in files]
    for path, name in zip(files, names, strict=True):
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        if not SAFE_NAME.match(name):
            raise ValueError(f"{path}: the file name {name!r} must use letters, digits, '.', '-' and '_' only")
    if len(set(names)) != len(names):
        raise ValueError(f"two files share a name: {sorted(n for n in names if names.count(n) > 1)[0]}")
    target = store or landing_store(settings)
    folder = f"{settings.storage.path('landing').rstrip('/')}/{partner}/{feed_name}/{delivery}"
    if target.exists(folder):
        raise FileExistsError(f"delivery {delivery} of {partner}/{feed_name} is already in landing ({folder})")
    local = LocalStore()
    entries = []
    for path in files:
        digest = local.digest(str(path))
        entries.append(
            {
                "name": path.name,
                "bytes": digest.bytes,
                "sha256": digest.sha256,
                "rows": digest.data_rows(feed.has_header_line),
            }
        )
    for path in files:
        target.upload(path, f"{folder}/{path.name}")
        logger.info("delivered %s to %s", path, folder)
    manifest = write_manifest(target, folder, feed, delivery, entries, replaces=replaces)
    return Delivery(folder=folder, delivery_id=delivery, manifest=manifest)
