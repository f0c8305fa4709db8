"""`lakehouse link`: the probabilistic engine on outside files, for researchers linking a dataset of their own.

One input is deduplicated; two inputs are linked to each other (candidate pairs across the two only). A mapping
YAML names the file's column for each standard attribute:

    record_id: rec_id                          # required, unique within the file
    first_name: given_name
    last_name: surname
    dob: {column: birth_date, format: yyyyMMdd}   # a Spark datetime pattern; default yyyy-MM-dd
    zip: postcode

Values are standardized exactly as silver standardizes partner feeds (`silver.identity.standardized_values`);
SSN and `other_id` become HMAC tokens under a key that lives only in this process (the key from the environment
when one is set, else a random one), so no identifier is written anywhere. The model is trained on the input
unless a registered model is named. Output, in DIR: clusters.parquet (source, record_id, cluster_id) and
pairs.parquet (source_l, record_id_l, source_r, record_id_r, match_weight, match_probability).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import ConfigError, MatchingSettings, Settings
from lakehouse.er.linking import probabilistic_linkage
from lakehouse.er.model import FellegiSunterModel
from lakehouse.silver.identity import standardized_values
from lakehouse.silver.standardize import hmac_tokenizer

logger = logging.getLogger(__name__)

ATTRIBUTES: dict[str, str | None] = {
    "record_id": None,
    "first_name": "first_name",
    "middle_name": "middle_name",
    "last_name": "last_name",
    "dob": "birth_date",
    "ssn": "ssn",
    "other_id": "ssid",
    "sex": "gender",
    "street_number": None,
    "address_line": "address_line",
    "city": "city",
    "zip": "zip",
    "state": None,
    "phone": None,
    "email": None,
}
"""Mapping key -> the identity role of silver it is standardized as (None: kept out of the role table)."""
COMPARED = ("first_name", "middle_name", "last_name", "dob", "ssn", "other_id", "sex", "zip")
"""The attributes the model compares; the others are accepted and checked, and do not affect the score yet."""
SOURCE_SEPARATOR = "\u001f"


class LinkInputError(ValueError):
    """An input file or mapping that cannot be linked; the message names the file, key or column."""


@dataclass(frozen=True)
class ColumnMapping:
    """A parsed mapping file: attribute -> column, and the birth date pattern."""

    path: Path
    columns: Mapping[str, str]
    dob_format: str | None


@dataclass(frozen=True)
class LinkFilesResult:
    n_records: int
    n_clusters: int
    n_pairs_written: int
    n_candidate_pairs: int
    threshold: float
    clusters_path: Path
    pairs_path: Path
    model: FellegiSunterModel
    trained: bool


def load_mapping(path: Path) -> ColumnMapping:
    """Parse MAPPING.yaml; LinkInputError naming the file and key when it is malformed."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LinkInputError(f"{path}: cannot read the mapping file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise LinkInputError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise LinkInputError(f"{path}: a mapping must be a YAML mapping of attribute: column")
    unknown = sorted(str(k) for k in raw if k not in ATTRIBUTES)
    if unknown:
        raise LinkInputError(f"{path}: unknown attribute(s) {', '.join(unknown)}; known: {', '.join(ATTRIBUTES)}")
    if "record_id" not in raw:
        raise LinkInputError(f"{path}: record_id is required (the column that identifies a row)")
    columns: dict[str, str] = {}
    dob_format: str | None = None
    for key, value in raw.items():
        if key == "dob" and isinstance(value, dict):
            extra = sorted(set(value) - {"column", "format"})
            if extra or not isinstance(value.get("column"), str):
                raise LinkInputError(f"{path}: dob must be a column name or {{column: NAME, format: PATTERN}}")
            columns[key] = value["column"]
            fmt = value.get("format")
            if fmt is not None and not isinstance(fmt, str):
                raise LinkInputError(f"{path}: dob.format must be a Spark datetime pattern such as yyyyMMdd")
            dob_format = fmt
        elif isinstance(value, str) and value:
            columns[key] = value
        else:
            raise LinkInputError(f"{path}: {key} must name a column of the input, got {value!r}")
    return ColumnMapping(path=path, columns=columns, dob_format=dob_format)


def read_input(spark: SparkSession, path: Path) -> DataFrame:
    """A CSV (with header; every value read as a string) or Parquet file or directory as a DataFrame."""
    if not path.exists():
        raise LinkInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
        return spark.read.parquet(str(path))
    if suffix in (".csv", ".txt", ".tsv"):
        return (
            spark.read.option("header", "true")
            .option("inferSchema", "false")
            .option("multiLine", "true")
            .option("escape", '"')
            .option("sep", "\t" if suffix == ".tsv" else ",")
            .option("mode", "FAILFAST")
            .csv(str(path))
        )
    raise LinkInputError(f"{path}: unsupported file type {suffix or '(none)'}; give a .csv or .parquet file")


def standardized_records(
    frame: DataFrame, mapping: ColumnMapping, source: str, path: Path, tokenize_key: bytes
) -> DataFrame:
    """The silver.person_records columns the engine reads, one row per input row; `partner` is the source."""
    missing = sorted(c for c in mapping.columns.values() if c not in frame.columns)
    if missing:
        raise LinkInputError(
            f"{path}: column(s) {', '.join(missing)} named in {mapping.path} not found; "
            f"the file has {', '.join(frame.columns)}"
        )
    cols = mapping.columns
    raw: dict[str, Column] = {}
    for attribute, role in ATTRIBUTES.items():
        if role is not None and attribute in cols:
            raw[role] = F.col(cols[attribute]).cast("string")
    if "street_number" in cols:
        street = F.col(cols["street_number"]).cast("string")
        raw["address_line"] = F.concat_ws(" ", street, raw["address_line"]) if "address_line" in raw else street
    values = standardized_values(raw, mapping.dob_format)
    tokenize = hmac_tokenizer(tokenize_key)
    record_id = F.trim(F.col(cols["record_id"]).cast("string"))
    return frame.select(
        F.lit(source).alias("partner"),
        record_id.alias("source_record_id"),
        F.concat(F.lit(source), F.lit(SOURCE_SEPARATOR), record_id).alias("record_id"),
        *[value.alias(name) for name, value in values.items() if name not in ("ssn", "ssid", "local_id")],
        tokenize(values["ssn"]).alias("ssn_token"),
        tokenize(values["ssid"]).alias("ssid_token"),
        tokenize.variants(values["ssn"], "ssn").alias("ssn_variant_tokens"),
        tokenize.variants(values["ssid"], "ssid").alias("ssid_variant_tokens"),
    )


def check_record_ids(records: DataFrame, path: Path, column: str) -> int:
    """Number of rows; LinkInputError when the record_id column has a null or a duplicate."""
    row = records.agg(
        F.count(F.lit(1)).alias("n"),
        F.count("source_record_id").alias("n_ids"),
        F.count_distinct("source_record_id").alias("n_distinct"),
    ).first()
    n, n_ids, n_distinct = (int(row["n"]), int(row["n_ids"]), int(row["n_distinct"])) if row else (0, 0, 0)
    if n_ids != n:
        raise LinkInputError(f"{path}: column {column} (record_id) is empty in {n - n_ids} row(s)")
    if n_distinct != n:
        dup = records.groupBy("source_record_id").count().where(F.col("count") > 1).orderBy("source_record_id").first()
        example = dup["source_record_id"] if dup else "?"
        raise LinkInputError(
            f"{path}: column {column} (record_id) is not unique: {n - n_distinct} duplicate(s), e.g. {example!r}"
        )
    if n == 0:
        raise LinkInputError(f"{path}: the file has no rows")
    return n


def source_names(inputs: Sequence[Path]) -> list[str]:
    """Each input's file stem; LinkInputError when two inputs share one."""
    if not 1 <= len(inputs) <= 2:
        raise LinkInputError(f"give one input to deduplicate or two to link, got {len(inputs)}")
    stems = [p.name.split(".")[0] for p in inputs]
    if len(set(stems)) != len(stems):
        raise LinkInputError(f"the two inputs have the same name stem {stems[0]!r}; rename one")
    return stems


def link_files(
    spark: SparkSession,
    settings: Settings,
    inputs: Sequence[Path],
    mapping_path: Path,
    out: Path,
    *,
    threshold: float | None = None,
    pairs_min_probability: float | None = None,
    model: FellegiSunterModel | None = None,
) -> LinkFilesResult:
    """Deduplicate one input or link two, and write DIR/clusters.parquet and DIR/pairs.parquet (module docstring)."""
    matching = settings.matching
    if matching is None:
        raise ConfigError("conf/matching.yaml was not loaded")
    link_threshold = matching.model.threshold if threshold is None else threshold
    pairs_floor = link_threshold if pairs_min_probability is None else pairs_min_probability
    for name, value in (("--threshold", link_threshold), ("--pairs-min-probability", pairs_floor)):
        if not 0.0 < value < 1.0:
            raise LinkInputError(f"{name} must be a probability strictly between 0 and 1, got {value}")
    mapping = load_mapping(mapping_path)
    stems = source_names(inputs)
    key = os.environ.get(settings.security.hmac_key_env, "").encode("utf-8") or secrets.token_bytes(32)
    parts = []
    for path, stem in zip(inputs, stems, strict=True):
        records = standardized_records(read_input(spark, path), mapping, stem, path, tokenize_key=key).localCheckpoint(
            eager=True
        )
        n = check_record_ids(records, path, mapping.columns["record_id"])
        logger.info("link: %s: %d records (source %s)", path, n, stem)
        parts.append(records)
    records = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    stored_floor = min(matching.model.min_stored_probability, pairs_floor)
    run_matching: MatchingSettings = dataclasses.replace(
        matching, model=dataclasses.replace(matching.model, min_stored_probability=stored_floor)
    )
    linkage = probabilistic_linkage(
        records,
        run_matching,
        model=model,
        threshold=link_threshold,
        across="partner" if len(inputs) == 2 else None,
    )
    ids = records.select("record_id", F.col("partner").alias("source"), "source_record_id")
    anchors = ids.select(
        F.col("record_id").alias("cluster_id"),
        F.concat_ws(":", F.col("source"), F.col("source_record_id")).alias("cluster_label"),
    )
    clusters = (
        ids.join(linkage.labels, on="record_id", how="inner")
        .join(anchors, on="cluster_id", how="inner")
        .select("source", F.col("source_record_id").alias("record_id"), F.col("cluster_label").alias("cluster_id"))
    )
    side = {
        s: ids.select(
            F.col("record_id").alias(f"record_id_{s}"),
            F.col("source").alias(f"source_{s}"),
            F.col("source_record_id").alias(f"original_{s}"),
        )
        for s in ("l", "r")
    }
    pairs = (
        linkage.scored.where(F.col("match_probability") >= F.lit(pairs_floor))
        .join(side["l"], on="record_id_l", how="inner")
        .join(side["r"], on="record_id_r", how="inner")
        .select(
            "source_l",
            F.col("original_l").alias("record_id_l"),
            "source_r",
            F.col("original_r").alias("record_id_r"),
            "match_weight",
            "match_probability",
        )
    )
    out.mkdir(parents=True, exist_ok=True)
    clusters_path, pairs_path = out / "clusters.parquet", out / "pairs.parquet"
    clusters.orderBy("cluster_id", "source", "record_id").write.mode("overwrite").parquet(str(clusters_path))
    pairs.orderBy(F.desc("match_probability"), "record_id_l", "record_id_r").write.mode("overwrite").parquet(
        str(pairs_path)
    )
    written_clusters = spark.read.parquet(str(clusters_path))
    n_records = written_clusters.count()
    n_clusters = written_clusters.select("cluster_id").distinct().count()
    n_pairs = spark.read.parquet(str(pairs_path)).count()
    return LinkFilesResult(
        n_records=n_records,
        n_clusters=n_clusters,
        n_pairs_written=n_pairs,
        n_candidate_pairs=linkage.n_candidate_pairs,
        threshold=link_threshold,
        clusters_path=clusters_path,
        pairs_path=pairs_path,
        model=linkage.model,
        trained=linkage.trained,
    )
