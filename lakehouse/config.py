"""Typed configuration: conf/base.yaml merged with conf/env/<env>.yaml, partners/ and matching.yaml.

Every YAML file is loaded into frozen dataclasses. An unknown key, a missing required key or a
value of the wrong type stops the run with a `ConfigError` that names the file and the key path.
Secrets never live in YAML: the HMAC key is read from the environment variable the config names,
and paths can be overridden from the environment (`LAKEHOUSE_STORAGE_ROOT`, `LAKEHOUSE_CONF_DIR`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

T = TypeVar("T")

ENV_CONF_DIR = "LAKEHOUSE_CONF_DIR"
ENV_STORAGE_ROOT = "LAKEHOUSE_STORAGE_ROOT"
ENV_LOCAL_ROOT = "LAKEHOUSE_LOCAL_ROOT"
ENV_METASTORE_URL = "LAKEHOUSE_METASTORE_URL"

IDENTITY_ROLES = (
    "local_id",
    "ssn",
    "ssid",
    "first_name",
    "middle_name",
    "last_name",
    "birth_date",
    "gender",
    "race_ethnicity",
    "address_line",
    "city",
    "zip",
)
"""Roles a feed column can play in `silver.person_records`."""

COLUMN_TYPES = ("string", "int", "long", "double", "decimal", "date", "boolean")


class ConfigError(ValueError):
    """A configuration file is wrong; the message names the file and the key."""


# --------------------------------------------------------------------------------------------------
# base.yaml + env/<env>.yaml


LOCAL_ONLY = ("metastore", "mlflow")
"""Storage locations that must be folders on this machine: the Derby metastore and MLflow's SQLite store."""


@dataclass(frozen=True)
class StorageSettings:
    """Where everything lives. Relative paths are relative to `root`; `root` may be a URI (s3a://bucket/prefix).

    `local` is the folder on this machine for the LOCAL_ONLY locations when `root` is a URI; empty means
    `root` (then a local folder).
    """

    root: str
    landing: str = "landing"
    warehouse: str = "warehouse"
    metastore: str = "metastore"
    ground_truth: str = "synthetic/ground_truth"
    checkpoints: str = "checkpoints"
    mlflow: str = "mlflow"
    local: str = ""
    metastore_url: str = ""
    """JDBC URL of a metastore database that several jobs share (jdbc:derby://127.0.0.1:PORT/NAME, the server of
    infra/metastore/metastore-server); empty: the embedded Derby in `metastore`, one job at a time."""

    def path(self, name: str) -> str:
        """Absolute path or URI of one of the storage locations named above."""
        value: str = getattr(self, name)
        if "://" in value or value.startswith("/"):
            return value
        base = self.local if name in LOCAL_ONLY and self.local else self.root
        return f"{base.rstrip('/')}/{value}"

    def uses_s3(self) -> bool:
        """True when a location (the root, landing, ...) is on S3 (s3a://)."""
        return any(str(getattr(self, f.name)).startswith("s3a://") for f in dataclasses.fields(self))


@dataclass(frozen=True)
class S3Settings:
    """The S3 service of s3a:// storage (Spark's S3A) and of `lakehouse deliver` (boto3).

    Never credentials: S3A and boto3 both take them from the standard AWS chain (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, or AWS_PROFILE and the shared credentials file, or an instance or pod role).
    The environment variables AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL, when set, win over `endpoint`.
    """

    endpoint: str = ""
    """Empty: AWS's own endpoint of `region`. An S3-compatible server: its URL (http://127.0.0.1:PORT)."""
    region: str = "us-east-1"
    path_style: bool = False
    """Bucket in the path (http://host/bucket/key), as most S3-compatible servers need; AWS: virtual-host style."""

    def endpoint_url(self) -> str:
        """The endpoint in effect: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else `endpoint` ("" = AWS)."""
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or self.endpoint


@dataclass(frozen=True)
class DatabaseSettings:
    """Spark catalog database of each layer."""

    bronze: str = "bronze"
    quarantine: str = "quarantine"
    silver: str = "silver"
    mpi: str = "mpi"
    gold: str = "gold"
    public: str = "public"
    ops: str = "ops"

    def all(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SparkSettings:
    """Session settings; `conf` is passed to the builder verbatim after the defaults."""

    app_name: str = "c2c-lakehouse"
    master: str | None = "local[2]"
    driver_memory: str = "4g"
    shuffle_partitions: int = 8
    enable_hive: bool = True
    log_level: str = "WARN"
    conf: dict[str, str] = field(default_factory=dict)
    ship_code: bool = False
    """Send the lakehouse package to the executors as a zip at session start (SparkContext.addPyFile), as a
    cluster whose executors do not have the project installed needs (conf/env/standalone.yaml)."""
    executor_python: str | None = None
    """The Python the executors run (PYSPARK_PYTHON), absolute or relative to the project folder; unset: the
    driver's own."""


DEMO_KEY_SHA256 = "14af099994f097d291c024860a475606a8d7f1ac7e47a612d491ad34475079f0"
"""SHA-256 of the HMAC key the Makefile uses for synthetic samples (public, so only for synthetic data)."""


@dataclass(frozen=True)
class SecuritySettings:
    """Secrets are never in YAML: only the names of the environment variables that hold them."""

    hmac_key_env: str = "LAKEHOUSE_HMAC_KEY"
    min_key_length: int = 16
    allow_demo_key: bool = False
    """Whether the published key of the synthetic samples (`make run`) may be used: only by the one-machine
    environments (local, large), never by one that could hold partner data."""

    def hmac_key(self) -> bytes:
        """The HMAC key from the environment; refuses to run without one, or with the demo key where it is not
        allowed."""
        value = os.environ.get(self.hmac_key_env)
        if not value:
            raise ConfigError(
                f"environment variable {self.hmac_key_env} is not set: the HMAC key that tokenizes SSNs and "
                f"student ids must come from the environment (export {self.hmac_key_env}=...)"
            )
        if len(value) < self.min_key_length:
            raise ConfigError(f"{self.hmac_key_env} is shorter than {self.min_key_length} characters")
        if not self.allow_demo_key and hashlib.sha256(value.encode("utf-8")).hexdigest() == DEMO_KEY_SHA256:
            raise ConfigError(
                f"{self.hmac_key_env} holds the demo key of the synthetic samples, which is published in the "
                "Makefile: this environment needs a key of its own (from your secret store)"
            )
        return value.encode("utf-8")


@dataclass(frozen=True)
class BronzeSettings:
    """Limits bronze holds every delivery to."""

    max_field_chars: int = 1000
    """A value longer than this sends its line to quarantine (rule field_length): no feed column is meant to
    hold more, and one runaway field (a missing closing quote, a binary blob) must not reach silver."""
    feeds: tuple[str, ...] = ()
    """`partner/feed` keys whose deliveries a run ingests (`lakehouse run --feed`); empty: every feed."""


@dataclass(frozen=True)
class SilverSettings:
    """How the silver build computes its tables."""

    persist_checked: bool = True
    """Keep each feed's checked rows (validated, expectations flagged, identity standardized) in Spark's cache
    (memory, then local disk) for the build's four passes: the counts, person_records, the feed table and the
    quarantine. Off: every pass reads bronze and validates again (docs/performance.md has the A/B)."""


@dataclass(frozen=True)
class MaintenanceSettings:
    """`lakehouse maintain`: compaction and vacuum of every table."""

    vacuum_retain_hours: int = 168
    """History kept by VACUUM: time travel reaches back this far (Delta refuses less than 168 h by default)."""


@dataclass(frozen=True)
class SynthSettings:
    """Defaults of `lakehouse generate`; the command line overrides people and seed."""

    people: int = 5000
    seed: int = 42
    first_birth_year: int = 1990
    last_birth_year: int = 2004
    first_wage_year: int = 2012
    last_data_year: int = 2024
    bad_row_rate: float = 0.0005
    files_per_feed: int = 1
    first_data_year: int = 2003
    rows_per_file: int = 1_500_000
    twin_rate: float = 0.015
    no_ssn_rate: float = 0.08
    shared_ssn_rate: float = 0.002
    placeholder_ssn_rate: float = 0.003
    ssn_typo_rate: float = 0.005
    name_typo_rate: float = 0.02
    name_swap_rate: float = 0.005
    dob_swap_rate: float = 0.01
    partitions: int = 0


@dataclass(frozen=True)
class PublicSettings:
    """Small-cell suppression of public tables."""

    min_cell_size: int = 11


@dataclass(frozen=True)
class Settings:
    """Everything one run needs except partners and matching, which load beside it."""

    env: str
    storage: StorageSettings
    s3: S3Settings = field(default_factory=S3Settings)
    spark: SparkSettings = field(default_factory=SparkSettings)
    databases: DatabaseSettings = field(default_factory=DatabaseSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    bronze: BronzeSettings = field(default_factory=BronzeSettings)
    silver: SilverSettings = field(default_factory=SilverSettings)
    maintenance: MaintenanceSettings = field(default_factory=MaintenanceSettings)
    synth: SynthSettings = field(default_factory=SynthSettings)
    public: PublicSettings = field(default_factory=PublicSettings)
    partners: tuple[PartnerConfig, ...] = ()
    matching: MatchingSettings | None = None

    def table(self, layer: str, name: str) -> str:
        """Qualified catalog name of table `name` in `layer` (bronze, silver, mpi, ...)."""
        return f"{getattr(self.databases, layer)}.{name}"

    def feeds(self) -> list[FeedConfig]:
        """Every feed of every partner, in partner then feed order."""
        return [feed for partner in self.partners for feed in partner.feeds]

    def feed(self, partner: str, feed: str) -> FeedConfig:
        for candidate in self.feeds():
            if candidate.partner == partner and candidate.name == feed:
                return candidate
        raise KeyError(f"unknown feed {partner}/{feed}")


# --------------------------------------------------------------------------------------------------
# partners/<partner>.yaml


@dataclass(frozen=True)
class ColumnConfig:
    """One column of a partner file. `identity` names its role in person_records, if any."""

    name: str
    type: Literal["string", "int", "long", "double", "decimal", "date", "boolean"] = "string"
    required: bool = False
    pii: bool = False
    identity: str | None = None
    format: str | None = None
    width: int | None = None
    precision: int = 12
    scale: int = 2
    allowed: tuple[str, ...] = ()
    description: str = ""

    def spark_type(self) -> str:
        return f"decimal({self.precision},{self.scale})" if self.type == "decimal" else self.type


@dataclass(frozen=True)
class ReferenceCheck:
    """`column`'s values must be keys (`key`) of lakehouse/data/<table>.csv, among its rows matching `where`."""

    column: str
    table: str
    key: str
    where: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpectationConfig:
    """A data-quality expectation of a feed (lakehouse/silver/expectations.py): exactly one check of
    `expect` (SQL boolean over the typed columns), `unique` (columns) or `reference`, and an action."""

    name: str
    on_violation: Literal["warn", "drop", "fail"] = "warn"
    expect: str | None = None
    unique: tuple[str, ...] = ()
    reference: ReferenceCheck | None = None
    description: str = ""

    def describe(self) -> str:
        """The check in words: the SQL, `unique(a, b)` or `reference(col in table.key)`."""
        if self.expect is not None:
            return self.expect
        if self.unique:
            return f"unique({', '.join(self.unique)})"
        assert self.reference is not None
        where = "".join(f" where {k} = {v}" for k, v in self.reference.where.items())
        return f"{self.reference.column} in {self.reference.table}.{self.reference.key}{where}"

    def column(self) -> str | None:
        """The one column the check is about, when there is one."""
        if self.reference is not None:
            return self.reference.column
        return self.unique[0] if len(self.unique) == 1 else None


@dataclass(frozen=True)
class FeedConfig:
    """One feed: a kind of file a partner delivers, its format, columns and keys."""

    name: str
    description: str
    format: Literal["csv", "fixed_width", "jsonl"]
    record_key: str
    columns: tuple[ColumnConfig, ...]
    natural_key: tuple[str, ...] = ()
    delimiter: str = ","
    encoding: str = "utf-8"
    header: bool = True
    file_extension: str = "csv"
    domain: str = ""
    partner: str = ""
    expectations: tuple[ExpectationConfig, ...] = ()

    @property
    def key(self) -> str:
        """`<partner>_<feed>`, the table name of this feed in bronze and silver."""
        return f"{self.partner}_{self.name}"

    @property
    def has_header_line(self) -> bool:
        """Files start with a header line: CSV with `header: true` (JSON Lines and fixed-width files never do)."""
        return self.format == "csv" and self.header

    def column(self, name: str) -> ColumnConfig:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"feed {self.key} has no column {name}")

    def identity_columns(self) -> dict[str, str]:
        """Identity role -> column name."""
        return {c.identity: c.name for c in self.columns if c.identity}

    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.pii]


@dataclass(frozen=True)
class PartnerConfig:
    name: str
    title: str
    feeds: tuple[FeedConfig, ...]


# --------------------------------------------------------------------------------------------------
# matching.yaml


@dataclass(frozen=True)
class BlockingRule:
    """An equi-join rule: two records are a candidate pair (or, in the baseline, a match) when every column is
    equal and not null. A block (records sharing the key) above max_block_size is left out and reported."""

    name: str
    columns: tuple[str, ...]
    max_block_size: int = 50


@dataclass(frozen=True)
class ModelSettings:
    """Training and scoring of the Fellegi-Sunter model (see docs/linkage.md)."""

    threshold: float = 0.95
    """Match probability at or above which a scored pair links two records."""
    strong_threshold: float = 0.999
    """Links at or above it are strong: an oversized cluster is rebuilt from strong links only."""
    min_stored_probability: float = 0.01
    """Scored pairs below it are not kept in mpi.scored_pairs (they explain nothing anyone asks about)."""
    u_sample_pairs: int = 1_000_000
    """Random record pairs compared to estimate the u probabilities."""
    em_max_iterations: int = 40
    em_tolerance: float = 1e-5
    training_rules: tuple[str, ...] = ()
    """Blocking rules whose pairs train the m probabilities by EM, one session each (their own columns left out)."""
    jaro_winkler_high: float = 0.92
    jaro_winkler_low: float = 0.85
    max_tf_adjustment: float = 8.0
    """Cap (bits, either sign) of the term-frequency adjustment of one exact match."""
    max_birth_dates_per_identifier: int = 5
    """An SSN/SSID token held by records with more distinct birth dates is a placeholder, nulled for linkage."""
    max_broadcast_lookup_rows: int = 5_000_000
    """A term-frequency lookup with at most this many values is broadcast to the records, not shuffled."""
    max_broadcast_records: int = 200_000
    """Up to this many records, the features are broadcast to the candidate pairs, not joined by shuffles."""
    seed: int = 42


@dataclass(frozen=True)
class ClusteringSettings:
    max_iterations: int = 50
    """Bound on the iterations of connected components."""
    max_cluster_size: int = 60
    """A cluster with more records is rebuilt from strong links only, then checked for conflicts."""


@dataclass(frozen=True)
class RegistrySettings:
    """Where linkage models are tracked and registered (MLflow), and which version production runs use."""

    tracking_uri: str = ""
    """MLflow tracking and registry URI; empty: a SQLite file in storage.mlflow (local storage roots only).
    The environment variable MLFLOW_TRACKING_URI, when set, wins."""
    experiment: str = "person-linkage"
    model_name: str = "c2c-person-linkage"
    alias: str = "champion"
    """Registered version a run scores with; a new version is trained (and gets the alias) when none has it."""
    retrain: bool = False
    """Train a new version on this run's records, register it and move the alias to it (`lakehouse run --retrain`)."""


@dataclass(frozen=True)
class MatchingSettings:
    blocking: tuple[BlockingRule, ...]
    deterministic_rules: tuple[BlockingRule, ...] = ()
    engine: Literal["probabilistic", "deterministic"] = "probabilistic"
    model: ModelSettings = field(default_factory=ModelSettings)
    clustering: ClusteringSettings = field(default_factory=ClusteringSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    incremental: bool = True
    """Link only what a new delivery changes when the previous run left its state with the same model and
    settings (docs/linkage.md); otherwise, or with `lakehouse run --full-relink`, link everything."""
    evaluate: bool = True


# --------------------------------------------------------------------------------------------------
# loading


def conf_dir() -> Path:
    """conf/ of the checkout, or $LAKEHOUSE_CONF_DIR."""
    override = os.environ.get(ENV_CONF_DIR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "conf"


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping; anything else is a `ConfigError` naming the file."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, not {type(data).__name__}")
    return data


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """`overlay` on top of `base`; nested mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, source: str, key: str) -> Any:
    """`value` checked against annotation `tp`; dataclasses recurse. Raises ConfigError."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, source, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{source}: key '{key}' must be {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            allowed = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{source}: key '{key}' must be one of {allowed}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: key '{key}' must be a list, got {type(value).__name__}")
        (item_type, _ellipsis) = get_args(tp)
        return tuple(_convert(v, item_type, source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: key '{key}' must be a mapping, got {type(value).__name__}")
        _k, item_type = get_args(tp)
        return {str(k): _convert(v, item_type, source, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: key '{key}' must be a mapping, got {type(value).__name__}")
        return from_mapping(tp, value, source, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: key '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: key '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: key '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{source}: key '{key}' must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{source}: key '{key}' has unsupported type {_type_name(tp)}")


def from_mapping(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    """Build dataclass `cls` from `data`, naming `source` and the key path on any error."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            path = f"{prefix}.{key}" if prefix else str(key)
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown key '{path}' (known keys: {known})")
    kwargs: dict[str, Any] = {}
    for name, spec in fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], source, path)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key '{path}'")
    return cls(**kwargs)


_TOP_LEVEL = ("storage", "s3", "spark", "databases", "security", "bronze", "silver", "maintenance", "synth", "public")


def load_partner(path: Path) -> PartnerConfig:
    """One partners/<partner>.yaml: `partner`, `title` and a mapping of feeds."""
    data = read_yaml(path)
    source = str(path)
    for key in ("partner", "title", "feeds"):
        if key not in data:
            raise ConfigError(f"{source}: missing required key '{key}'")
    unknown = set(data) - {"partner", "title", "feeds"}
    if unknown:
        raise ConfigError(f"{source}: unknown key '{sorted(unknown)[0]}' (known keys: feeds, partner, title)")
    partner = _convert(data["partner"], str, source, "partner")
    if path.stem != partner:
        raise ConfigError(f"{source}: key 'partner' is {partner!r} but the file is named {path.name}")
    feeds_data = data["feeds"]
    if not isinstance(feeds_data, dict) or not feeds_data:
        raise ConfigError(f"{source}: key 'feeds' must be a non-empty mapping of feed name to feed")
    feeds = []
    for feed_name, feed_data in feeds_data.items():
        if not isinstance(feed_data, dict):
            raise ConfigError(f"{source}: key 'feeds.{feed_name}' must be a mapping")
        feed = from_mapping(FeedConfig, {**feed_data, "name": feed_name}, source, f"feeds.{feed_name}")
        feed = dataclasses.replace(feed, partner=partner)
        _check_feed(feed, source)
        feeds.append(feed)
    return PartnerConfig(name=partner, title=str(data["title"]), feeds=tuple(feeds))


def _check_expectations(feed: FeedConfig, source: str, prefix: str) -> None:
    """Each expectation: one check, columns of the feed, a reference table and key that exist."""
    from lakehouse.reference import read_table

    names = {c.name for c in feed.columns}
    seen: set[str] = set()
    for i, expectation in enumerate(feed.expectations):
        key = f"{prefix}.expectations[{i}]"
        if expectation.name in seen or not expectation.name.isidentifier():
            raise ConfigError(f"{source}: key '{key}.name' {expectation.name!r} must be a unique identifier")
        seen.add(expectation.name)
        checks = sum((expectation.expect is not None, bool(expectation.unique), expectation.reference is not None))
        if checks != 1:
            raise ConfigError(f"{source}: key '{key}' must have exactly one of expect, unique, reference")
        columns = list(expectation.unique) + ([expectation.reference.column] if expectation.reference else [])
        for column in columns:
            if column not in names:
                raise ConfigError(f"{source}: key '{key}' names {column!r}, which is not a column of the feed")
        if expectation.unique and expectation.on_violation == "drop":
            raise ConfigError(
                f"{source}: key '{key}.on_violation' cannot be 'drop' for unique: which duplicate to keep is "
                "not a rule; use warn or fail"
            )
        reference = expectation.reference
        if reference is not None:
            try:
                rows = read_table(reference.table)
            except FileNotFoundError:
                raise ConfigError(
                    f"{source}: key '{key}.reference.table' {reference.table!r} is not in lakehouse/data"
                ) from None
            header = set(rows[0]) if rows else set()
            for column in (reference.key, *reference.where):
                if column not in header:
                    raise ConfigError(
                        f"{source}: key '{key}.reference' names {column!r}, not a column of {reference.table}.csv"
                    )


def _check_feed(feed: FeedConfig, source: str) -> None:
    prefix = f"feeds.{feed.name}"
    _check_expectations(feed, source, prefix)
    names = [c.name for c in feed.columns]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: key '{prefix}.columns' names a column twice")
    for key_column in (feed.record_key, *feed.natural_key):
        if key_column not in names:
            raise ConfigError(f"{source}: key '{prefix}' names key column '{key_column}' that is not a column")
    roles = [c.identity for c in feed.columns if c.identity]
    for i, column in enumerate(feed.columns):
        if column.identity and column.identity not in IDENTITY_ROLES:
            raise ConfigError(
                f"{source}: key '{prefix}.columns[{i}].identity' is {column.identity!r}; "
                f"known roles: {', '.join(IDENTITY_ROLES)}"
            )
        if feed.format == "fixed_width" and not column.width:
            raise ConfigError(f"{source}: key '{prefix}.columns[{i}].width' is required for fixed_width feeds")
        if column.type == "date" and not column.format:
            raise ConfigError(f"{source}: key '{prefix}.columns[{i}].format' is required for date columns")
    if len(set(roles)) != len(roles):
        raise ConfigError(f"{source}: key '{prefix}.columns' gives one identity role to two columns")


def load_matching(path: Path) -> MatchingSettings:
    matching = from_mapping(MatchingSettings, read_yaml(path), str(path))
    source = str(path)
    names = [rule.name for rule in matching.blocking]
    for training in matching.model.training_rules:
        if training not in names:
            raise ConfigError(f"{source}: key 'model.training_rules' names {training!r}, which is not a blocking rule")
    model = matching.model
    for key in ("threshold", "strong_threshold", "min_stored_probability"):
        value = getattr(model, key)
        if not 0.0 < value < 1.0:
            raise ConfigError(f"{source}: key 'model.{key}' must be between 0 and 1, got {value}")
    if not model.min_stored_probability <= model.threshold <= model.strong_threshold:
        raise ConfigError(
            f"{source}: key 'model.threshold' must lie between min_stored_probability and strong_threshold"
        )
    return matching


SHARED_CATALOG_SETTINGS = ("hive.metastore.uris", "hive.metastore.client.factory.class", "javax.jdo.option.")
"""Spark settings (with or without `spark.hadoop.`) that point the catalog at a metastore others use: a Hive
metastore service, AWS Glue, or a metastore database."""


def names_shared_catalog(key: str) -> bool:
    """Whether the Spark setting `key` points the catalog at a shared metastore (`SHARED_CATALOG_SETTINGS`)."""
    return any(part in key for part in SHARED_CATALOG_SETTINGS)


def load_settings(env: str = "local", conf: Path | None = None) -> Settings:
    """conf/base.yaml + conf/env/<env>.yaml + partners/*.yaml + matching.yaml, checked and frozen."""
    root = conf or conf_dir()
    base_path, env_path = root / "base.yaml", root / "env" / f"{env}.yaml"
    if not env_path.is_file():
        known = sorted(p.stem for p in (root / "env").glob("*.yaml"))
        raise ConfigError(f"{env_path}: no such environment '{env}' (known: {', '.join(known)})")
    base, overlay = read_yaml(base_path), read_yaml(env_path)
    for data, path in ((base, base_path), (overlay, env_path)):
        for key in data:
            if key not in _TOP_LEVEL:
                raise ConfigError(f"{path}: unknown key '{key}' (known keys: {', '.join(_TOP_LEVEL)})")
        # Check each file on its own first so the error names the file that holds the bad key.
        for key, value in data.items():
            cls = typing.get_type_hints(Settings)[key]
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: key '{key}' must be a mapping, got {type(value).__name__}")
            _check_partial(cls, value, str(path), key)
    merged = deep_merge(base, overlay)
    if os.environ.get(ENV_METASTORE_URL):
        merged = deep_merge(merged, {"storage": {"metastore_url": os.environ[ENV_METASTORE_URL]}})
    for key, variable in (("root", ENV_STORAGE_ROOT), ("local", ENV_LOCAL_ROOT)):
        from_env = os.environ.get(variable)
        if from_env:
            merged = deep_merge(merged, {"storage": {key: from_env}})
        elif merged.get("storage", {}).get(key):
            merged["storage"][key] = _resolve_root(str(merged["storage"][key]), root.parent)
    source = f"{base_path} + {env_path}"
    settings = from_mapping(Settings, {"env": env, **merged}, source)
    metastore = settings.storage.path("metastore")
    shared = settings.storage.metastore_url
    external = shared or any(names_shared_catalog(key) for key in settings.spark.conf)
    if settings.spark.enable_hive and "://" in metastore and not external:
        raise ConfigError(
            f"{source}: storage.metastore is {metastore}, but the embedded Derby metastore needs a folder on this "
            f"machine: set storage.local (or {ENV_LOCAL_ROOT}), or spark.conf spark.hadoop.hive.metastore.uris"
        )
    partners = tuple(load_partner(p) for p in sorted((root / "partners").glob("*.yaml")))
    if not partners:
        raise ConfigError(f"{root / 'partners'}: no partner YAML files")
    matching = load_matching(root / "matching.yaml")
    return dataclasses.replace(settings, partners=partners, matching=matching)


def _check_partial(cls: type, data: Mapping[str, Any], source: str, prefix: str) -> None:
    """Unknown keys and wrong types in a partial mapping (an overlay need not be complete)."""
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        path = f"{prefix}.{key}"
        if key not in hints:
            raise ConfigError(f"{source}: unknown key '{path}' (known keys: {', '.join(sorted(hints))})")
        tp = hints[key]
        if isinstance(value, dict) and dataclasses.is_dataclass(tp):
            _check_partial(tp, value, source, path)  # type: ignore[arg-type]
        else:
            _convert(value, tp, source, path)


def _resolve_root(root: str, project_dir: Path) -> str:
    """A relative local storage root is relative to the project folder, not the working folder."""
    if "://" in root or root.startswith("/"):
        return root
    return str((project_dir / root).resolve())
