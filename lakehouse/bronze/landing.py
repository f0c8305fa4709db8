"""The landing zone: finding delivery folders, reading and checking their `_manifest.json`.

Listing and the manifests go through Hadoop's FileSystem API (the one Spark itself uses, so local
folders, s3a:// and the rest work with the session's credentials): Spark's file sources skip names that
start with "_", so `_manifest.json` cannot be read with `spark.read`. Manifests are a few hundred bytes;
data files are never read here, only by Spark executors.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.config import FeedConfig, Settings
from lakehouse.landing import MANIFEST, SAFE_NAME

MANIFEST_NAME = MANIFEST
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
UTF8_NAMES = ("utf-8", "utf8")


def locate(file: str | None = None, line: int | None = None, column: int | None = None) -> str:
    """ "file F line L column C", with the parts that are known (empty when none is)."""
    parts = [f"file {file}" if file else "", f"line {line}" if line else "", f"column {column}" if column else ""]
    return " ".join(p for p in parts if p)


class DeliveryRejectedError(Exception):
    """A delivery breaks the landing contract.

    `rule` is a short machine name; `reason` is the sentence the ledger keeps and the partner reads:
    "file F line L column C: rule R: what is wrong", with the parts of the place that apply.
    """

    def __init__(
        self, rule: str, detail: str, *, file: str | None = None, line: int | None = None, column: int | None = None
    ) -> None:
        place = locate(file, line, column)
        reason = f"{place}: rule {rule}: {detail}" if place else f"rule {rule}: {detail}"
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


@dataclass(frozen=True)
class ManifestFile:
    """One data file listed in a manifest."""

    name: str
    sha256: str
    rows: int
    bytes: int | None


@dataclass(frozen=True)
class Manifest:
    """A delivery's `_manifest.json`, checked against its folder and the feed contract."""

    partner: str
    feed: str
    delivery_id: str
    delivered_at: str
    files: tuple[ManifestFile, ...]
    sha256: str
    replaces: str | None = None
    """An earlier delivery of the feed this one corrects (replaces in full), or None."""

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)


@dataclass(frozen=True)
class DeliveryFolder:
    """`<landing>/<partner>/<feed>/<delivery_id>/`, as found by its manifest."""

    partner: str
    feed: str
    delivery_id: str
    path: str

    @property
    def manifest_path(self) -> str:
        return f"{self.path}/{MANIFEST_NAME}"


class LandingFileSystem:
    """The few file-system calls bronze needs, through the session's Hadoop FileSystem."""

    def __init__(self, spark: SparkSession) -> None:
        context = spark.sparkContext
        jvm = context._jvm
        if jvm is None:  # pragma: no cover - only without a JVM gateway (Spark Connect)
            raise RuntimeError("bronze ingestion needs a classic Spark session with a JVM gateway")
        self._jvm = jvm
        self._conf = context._jsc.hadoopConfiguration()  # type: ignore[union-attr]

    def _path(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def glob(self, pattern: str) -> list[str]:
        """Paths (as URIs) matching a glob pattern; empty when nothing matches or the root is missing."""
        path = self._path(pattern)
        statuses = path.getFileSystem(self._conf).globStatus(path)
        return sorted(str(s.getPath().toString()) for s in (statuses or []))

    def list_files(self, folder: str) -> dict[str, int]:
        """Name -> size in bytes of every file (not folder) directly in `folder`."""
        path = self._path(folder)
        statuses = path.getFileSystem(self._conf).listStatus(path)
        return {str(s.getPath().getName()): int(s.getLen()) for s in statuses if s.isFile()}

    def read_bytes(self, path: str) -> bytes:
        """The whole content of a small file (a manifest)."""
        hadoop_path = self._path(path)
        stream = hadoop_path.getFileSystem(self._conf).open(hadoop_path)
        try:
            data: bytes = self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
        finally:
            stream.close()
        return bytes(data)


def find_deliveries(fs: LandingFileSystem, landing: str) -> list[DeliveryFolder]:
    """Every delivery folder under `landing` that holds a manifest, in partner, feed, delivery order.

    A folder without `_manifest.json` is a delivery still being copied (the manifest is written last)
    and is left for a later run.
    """
    folders = []
    for manifest in fs.glob(f"{landing.rstrip('/')}/*/*/*/{MANIFEST_NAME}"):
        folder = manifest[: -len(MANIFEST_NAME) - 1]
        partner, feed, delivery_id = folder.rstrip("/").rsplit("/", 3)[1:]
        folders.append(DeliveryFolder(partner=partner, feed=feed, delivery_id=delivery_id, path=folder))
    return sorted(folders, key=lambda d: (d.partner, d.feed, d.delivery_id))


def _require(data: dict[str, Any], key: str, kind: type, where: str, item: str = "") -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise DeliveryRejectedError(
            "manifest", f"{item}key '{key}' must be a {kind.__name__}, got {value!r}", file=where
        )
    return value


def parse_manifest(content: bytes, folder: DeliveryFolder, settings: Settings) -> tuple[Manifest, FeedConfig]:
    """The manifest of `folder`, checked; raises DeliveryRejectedError naming the rule broken.

    Checks: valid JSON object; partner, feed and delivery_id equal the folder's; the partner and feed
    are in the config; the format is the feed's; the encoding is UTF-8; at least one file, each with a
    safe unique name, a sha256 and a row count; `replaces`, when given, is another delivery id.
    """
    where = f"{folder.partner}/{folder.feed}/{folder.delivery_id}/{MANIFEST_NAME}"
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeliveryRejectedError("manifest", f"not valid UTF-8 JSON ({exc})", file=where) from exc
    if not isinstance(data, dict):
        raise DeliveryRejectedError("manifest", "must be a JSON object", file=where)
    for key in ("partner", "feed", "delivery_id"):
        value = _require(data, key, str, where)
        expected = getattr(folder, key)
        if value != expected:
            raise DeliveryRejectedError(
                "manifest", f"{key} is {value!r} but the delivery folder says {expected!r}", file=where
            )
    if not SAFE_NAME.match(folder.delivery_id):
        raise DeliveryRejectedError(
            "delivery_id", f"delivery id {folder.delivery_id!r} has unsafe characters", file=where
        )
    partners = {p.name for p in settings.partners}
    if folder.partner not in partners:
        raise DeliveryRejectedError(
            "unknown_partner", f"partner {folder.partner!r} is not in conf/partners", file=where
        )
    try:
        feed = settings.feed(folder.partner, folder.feed)
    except KeyError:
        raise DeliveryRejectedError(
            "unknown_feed", f"feed {folder.feed!r} is not a feed of partner {folder.partner!r}", file=where
        ) from None
    file_format = data.get("format", feed.format)
    if file_format != feed.format:
        raise DeliveryRejectedError(
            "format", f"format {file_format!r} but feed {feed.key} is {feed.format!r}", file=where
        )
    encoding = str(data.get("encoding", "utf-8")).lower()
    if encoding not in UTF8_NAMES or feed.encoding.lower() not in UTF8_NAMES:
        raise DeliveryRejectedError("encoding", f"encoding {encoding!r}; bronze reads UTF-8 files only", file=where)
    entries = data.get("files")
    if not isinstance(entries, list) or not entries:
        raise DeliveryRejectedError("manifest", "key 'files' must be a non-empty list", file=where)
    files = []
    for i, entry in enumerate(entries):
        item = f"files[{i}]"
        if not isinstance(entry, dict):
            raise DeliveryRejectedError("manifest", f"{item} must be an object", file=where)
        name = _require(entry, "name", str, where, f"{item}: ")
        if not SAFE_NAME.match(name):
            raise DeliveryRejectedError(
                "file_name", f"{item}: file name {name!r} is not a plain, visible file name", file=where
            )
        sha256 = str(_require(entry, "sha256", str, where, f"{item}: ")).lower()
        if not SHA256_HEX.match(sha256):
            raise DeliveryRejectedError("manifest", f"{item}: sha256 of file {name} is not 64 hex digits", file=where)
        rows = _require(entry, "rows", int, where, f"{item}: ")
        size = entry.get("bytes")
        if rows < 0 or (size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0)):
            raise DeliveryRejectedError(
                "manifest", f"{item}: rows and bytes of file {name} must be non-negative integers", file=where
            )
        files.append(ManifestFile(name=name, sha256=sha256, rows=rows, bytes=size))
    if len({f.name for f in files}) != len(files):
        raise DeliveryRejectedError("file_name", "a file is listed twice", file=where)
    replaces = data.get("replaces")
    if replaces is not None and (
        not isinstance(replaces, str) or not SAFE_NAME.match(replaces) or replaces == folder.delivery_id
    ):
        raise DeliveryRejectedError(
            "replaces", f"key 'replaces' must name another delivery id, got {replaces!r}", file=where
        )
    manifest = Manifest(
        partner=folder.partner,
        feed=folder.feed,
        delivery_id=folder.delivery_id,
        delivered_at=str(data.get("delivered_at", "")),
        files=tuple(files),
        sha256=hashlib.sha256(content).hexdigest(),
        replaces=replaces,
    )
    return manifest, feed
