"""One way into the lakehouse from a notebook or a Python shell, and the small summaries and charts the notebooks
in notebooks/ show.

`session()` opens the lakehouse of an environment (an argument, else $LAKEHOUSE_ENV, else local): the same
notebook runs on this machine or against a cluster (conf/env/standalone.yaml) by changing one variable. Every
other function takes that session, aggregates in Spark and brings back only small pandas frames (counts,
histograms, one row per person or expectation), so the notebooks hold no Spark logic of their own and work at
any size. Nothing here returns a name, SSN, student id, birth date or address: restricted tables are read for
record ids, person ids, weights and counts only. Charts are matplotlib Figures built without pyplot's global
state that render themselves as PNG, so a notebook cell shows each one exactly once (as the cell's value).
"""

from __future__ import annotations

import atexit
import functools
import io
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Settings, load_settings
from lakehouse.er.evaluation import feed_records, n_pairs, read_ground_truth, record_truth
from lakehouse.er.model import FellegiSunterModel
from lakehouse.er.scoring import weight_column
from lakehouse.public.suppression import SUPPRESSION_PREFIX
from lakehouse.session import build_session
from lakehouse.summary import ZONES

ENV_VARIABLE = "LAKEHOUSE_ENV"
"""Environment variable naming the environment (conf/env/<env>.yaml) when `session()` is given none."""
DEFAULT_ENV = "local"
ENV_CONF_KEY = "spark.lakehouse.env"
"""Spark setting in which `session()` records its environment, so `settings(spark)` loads the same conf."""

SUPPRESSED_COLOR = "#bdbdbd"
POSITIVE_COLOR, NEGATIVE_COLOR = "tab:green", "tab:red"


# --------------------------------------------------------------------------------------------------
# opening the lakehouse


def environment(env: str | None = None) -> str:
    """The environment to open: `env`, else $LAKEHOUSE_ENV, else local."""
    return env or os.environ.get(ENV_VARIABLE) or DEFAULT_ENV


@functools.cache
def _load_settings(env: str) -> Settings:
    return load_settings(env=env)


def session(env: str | None = None) -> SparkSession:
    """The lakehouse's SparkSession for `env` (conf/env/<env>.yaml; default $LAKEHOUSE_ENV, else local), with
    every layer's database in its catalog. $LAKEHOUSE_STORAGE_ROOT points it at another lakehouse."""
    name = environment(env)
    spark = build_session(_load_settings(name), extra_conf={ENV_CONF_KEY: name})
    atexit.unregister(_stop)  # one stop at exit, however often a notebook calls session()
    atexit.register(_stop, spark)
    return spark


def _stop(spark: SparkSession) -> None:
    """Stop Spark while the kernel is still alive: its cleanup is done before a notebook server signals the
    kernel's process group, which would interrupt the JVM deleting its temporary folders."""
    spark.stop()


def settings(spark: SparkSession) -> Settings:
    """The settings `spark` was opened with by `session()` (database names, storage locations, thresholds)."""
    return _load_settings(spark.conf.get(ENV_CONF_KEY, None) or environment())


def connection(spark: SparkSession) -> dict[str, str]:
    """Where the session is: environment, Spark master and version, storage root and warehouse."""
    conf = settings(spark)
    return {
        "environment": conf.env,
        "spark master": spark.conf.get("spark.master", None) or "?",
        "spark version": spark.version,
        "storage root": conf.storage.root,
        "warehouse": conf.storage.path("warehouse"),
    }


def _table(spark: SparkSession, layer: str, name: str) -> DataFrame:
    return spark.read.table(settings(spark).table(layer, name))


def _small(frame: DataFrame, *order: str | Column, limit: int | None = None) -> pd.DataFrame:
    """`frame` sorted by `order` (and cut to `limit` rows) in pandas: the one way results leave Spark here, for
    small ones only (aggregates, or a limit)."""
    ordered = frame.orderBy(*order) if order else frame
    return (ordered if limit is None else ordered.limit(limit)).toPandas()


# --------------------------------------------------------------------------------------------------
# what the lakehouse holds


def tables(spark: SparkSession, layers: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per table of `layers` (default: every layer, in pipeline order): layer, zone, table and its comment,
    which states the grain. From the catalog only: no table is scanned."""
    databases = settings(spark).databases.all()
    rows = []
    for layer in layers or databases:
        database = databases[layer]
        if not spark.catalog.databaseExists(database):
            continue
        for table in sorted(spark.catalog.listTables(database), key=lambda t: t.name):
            rows.append(
                {
                    "layer": layer,
                    "zone": ZONES.get(layer, "restricted"),
                    "table": f"{database}.{table.name}",
                    "comment (grain first)": table.description or "",
                }
            )
    return pd.DataFrame(rows, columns=["layer", "zone", "table", "comment (grain first)"])


def columns(spark: SparkSession, table: str) -> pd.DataFrame:
    """One row per column of `table`: name, type and the column's comment."""
    fields = spark.read.table(table).schema.fields
    return pd.DataFrame(
        [(f.name, f.dataType.simpleString(), f.metadata.get("comment", "")) for f in fields],
        columns=["column", "type", "comment"],
    )


# --------------------------------------------------------------------------------------------------
# linkage diagnostics


@dataclass(frozen=True)
class LinkageModelRun:
    """The model the latest link run scored with (mpi.linkage_models) and where MLflow keeps it."""

    model: FellegiSunterModel
    run_id: str
    model_name: str
    model_version: str
    mlflow_run_id: str
    trained: bool
    mode: str
    artifacts: tuple[str, ...]
    """Files of the MLflow run (model/model.json, charts/*.png) when the tracking store is a local folder."""

    def summary(self) -> dict[str, Any]:
        return {
            "link run": self.run_id,
            "registered model": f"{self.model_name} version {self.model_version}",
            "trained in this run": self.trained,
            "mode": self.mode,
            "MLflow run": self.mlflow_run_id,
            "MLflow artifacts": ", ".join(self.artifacts) or "(not in a local folder)",
            "prior (chance two random records match)": self.model.prior,
        }


def linkage_model(spark: SparkSession) -> LinkageModelRun:
    """The latest row of mpi.linkage_models with its model parsed; raises ValueError when no link run wrote one."""
    conf = settings(spark)
    row = _table(spark, "mpi", "linkage_models").orderBy(F.col("linked_at").desc()).first()
    if row is None:
        raise ValueError(f"{conf.table('mpi', 'linkage_models')} is empty: run the link stage first")
    run_folder = Path(conf.storage.path("mlflow")) / "artifacts" / str(row["mlflow_run_id"]) / "artifacts"
    artifacts = (
        tuple(str(p.relative_to(run_folder)) for p in sorted(run_folder.rglob("*")) if p.is_file())
        if run_folder.is_dir()
        else ()
    )
    return LinkageModelRun(
        model=FellegiSunterModel.from_json(row["model_json"]),
        run_id=row["run_id"],
        model_name=row["model_name"] or "",
        model_version=row["model_version"] or "",
        mlflow_run_id=row["mlflow_run_id"] or "",
        trained=bool(row["trained"]),
        mode=row["mode"] or "",
        artifacts=artifacts,
    )


def level_parameters(model: FellegiSunterModel) -> pd.DataFrame:
    """One row per comparison level: m, u and the level's weight log2(m/u) in bits."""
    return pd.DataFrame(
        [
            (c.name, level, m, u, weight)
            for c in model.comparisons
            for level, m, u, weight in zip(c.levels, c.m, c.u, c.log2_bayes_factors(), strict=True)
        ],
        columns=["comparison", "level", "m", "u", "weight_bits"],
    )


def probability_to_weight(probability: float) -> float:
    """The match weight (log2-odds) of a match probability: 0.95 -> 4.25 bits."""
    return math.log2(probability / (1.0 - probability))


def link_threshold(spark: SparkSession) -> float:
    """model.threshold of conf/matching.yaml: the match probability at which two records are linked."""
    matching = settings(spark).matching
    if matching is None:
        raise ValueError("conf/matching.yaml was not loaded")
    return matching.model.threshold


def record_labels(spark: SparkSession) -> DataFrame | None:
    """One row per crosswalk record with a known true person: record_id, person_key (the generator's ground
    truth, lakehouse.er.evaluation's rule); None when the lakehouse has no ground truth (real data)."""
    conf = settings(spark)
    truth = read_ground_truth(spark, conf.storage.path("ground_truth"))
    feed_rows = feed_records(spark, conf) if truth is not None else None
    if truth is None or feed_rows is None:
        return None
    crosswalk = _table(spark, "mpi", "crosswalk").select("record_id")
    return crosswalk.join(record_truth(feed_rows, truth), on="record_id", how="inner").localCheckpoint(eager=True)


def labelled_pairs(spark: SparkSession, labels: DataFrame | None) -> DataFrame:
    """mpi.scored_pairs (record ids, rule, match_weight, match_probability) with is_same_person: true when the
    ground truth puts both records under one person, null when either record (or the lakehouse) has none."""
    pairs = _table(spark, "mpi", "scored_pairs").select(
        "record_id_l", "record_id_r", "rule", "match_weight", "match_probability"
    )
    if labels is None:
        return pairs.withColumn("is_same_person", F.lit(None).cast("boolean"))
    left = labels.select(F.col("record_id").alias("record_id_l"), F.col("person_key").alias("person_key_l"))
    right = labels.select(F.col("record_id").alias("record_id_r"), F.col("person_key").alias("person_key_r"))
    return (
        pairs.join(left, on="record_id_l", how="left")
        .join(right, on="record_id_r", how="left")
        .withColumn("is_same_person", F.col("person_key_l") == F.col("person_key_r"))
        .drop("person_key_l", "person_key_r")
    )


def weight_histogram(pairs: DataFrame, bin_width: float = 1.0) -> pd.DataFrame:
    """One row per match-weight bin: bin_start, and the pairs in it of one person, of different people and of
    unknown truth (columns same_person, different_people, unknown)."""
    if bin_width <= 0:
        raise ValueError(f"bin_width must be positive, got {bin_width}")
    truth = F.col("is_same_person")
    counts = (
        pairs.withColumn("bin_start", F.floor(F.col("match_weight") / F.lit(bin_width)) * F.lit(bin_width))
        .groupBy("bin_start")
        .agg(
            F.count_if(truth).alias("same_person"),
            F.count_if(~truth).alias("different_people"),
            F.count_if(truth.isNull()).alias("unknown"),
        )
    )
    return _small(counts, "bin_start")


def threshold_curve(pairs: DataFrame, labels: DataFrame, weights: Sequence[float]) -> pd.DataFrame:
    """Pairwise precision and recall if pairs were linked at each match weight of `weights` (one Spark job).

    A pair counts as predicted when its weight is at or above the threshold, as true when the ground truth puts
    both records under one person. Recall's denominator is every record pair of one true person, blocked or not,
    so pairs that blocking never produced count as misses. This is the edge view, before connected components
    add the links implied by transitivity (mpi.linkage_metrics holds the figures of the clusters).
    """
    known = pairs.where(F.col("is_same_person").isNotNull())
    aggregates: list[Column] = []
    for index, weight in enumerate(weights):
        above = F.col("match_weight") >= F.lit(float(weight))
        aggregates += [
            F.count_if(above).alias(f"predicted_{index}"),
            F.count_if(above & F.col("is_same_person")).alias(f"true_positive_{index}"),
        ]
    counts = known.agg(*aggregates).first()
    sizes = labels.groupBy("person_key").agg(F.count(F.lit(1)).alias("n"))
    total = sizes.agg(F.sum(n_pairs(F.col("n"))).alias("pairs")).first()
    n_true = int(total["pairs"] or 0) if total is not None else 0
    rows = []
    for index, weight in enumerate(weights):
        predicted = int(counts[f"predicted_{index}"]) if counts is not None else 0
        true_positive = int(counts[f"true_positive_{index}"]) if counts is not None else 0
        rows.append(
            {
                "threshold_weight": float(weight),
                "threshold_probability": 1.0 / (1.0 + 2.0 ** (-float(weight))),
                "pairs_predicted": predicted,
                "pairs_true_positive": true_positive,
                "pairs_true": n_true,
                "precision": true_positive / predicted if predicted else math.nan,
                "recall": true_positive / n_true if n_true else math.nan,
            }
        )
    return pd.DataFrame(rows)


def linkage_metrics(spark: SparkSession) -> pd.DataFrame:
    """mpi.linkage_metrics, latest run first: cluster-level precision, recall and F1 against ground truth."""
    return _small(
        _table(spark, "mpi", "linkage_metrics").select(
            "run_id",
            "model",
            "n_records",
            "n_persons",
            "n_true_persons",
            "precision",
            "recall",
            "f1",
            "n_true_persons_split",
            "n_persons_merged",
            "evaluated_at",
        ),
        F.col("evaluated_at").desc(),
    )


@dataclass(frozen=True)
class PairTerm:
    """One comparison's part of a pair's match weight: the level the pair reached and its weight in bits."""

    comparison: str
    level: str
    weight: float


@dataclass(frozen=True)
class PairExplanation:
    """Why a pair scored what it did: the prior's log2-odds plus one term per comparison is the match weight."""

    record_id_l: str
    record_id_r: str
    partner_l: str
    partner_r: str
    rule: str
    prior_weight: float
    terms: tuple[PairTerm, ...]
    match_weight: float
    match_probability: float

    def frame(self) -> pd.DataFrame:
        """One row per comparison (level, weight) with the prior first and the total last."""
        rows = [("prior", "log2-odds of the prior", self.prior_weight)]
        rows += [(t.comparison, t.level, t.weight) for t in self.terms]
        rows.append(("match weight", f"probability {self.match_probability:.4f}", self.match_weight))
        return pd.DataFrame(rows, columns=["term", "level", "weight_bits"])


def explain_pair(
    spark: SparkSession,
    model: FellegiSunterModel,
    record_id_l: str | None = None,
    record_id_r: str | None = None,
) -> PairExplanation:
    """The field-by-field weights of one scored pair (mpi.scored_pairs keeps each comparison's level and weight).

    Without record ids: the weakest link, the linked pair closest to the threshold (or the best pair when
    nothing is linked), the most instructive one. Raises ValueError when the two records were not scored.
    """
    pairs = _table(spark, "mpi", "scored_pairs")
    if record_id_l is not None and record_id_r is not None:
        low, high = sorted((record_id_l, record_id_r))
        row = pairs.where((F.col("record_id_l") == low) & (F.col("record_id_r") == high)).first()
        if row is None:
            raise ValueError(f"records {low} and {high} are not a scored pair (not blocked, or scored below the floor)")
    else:
        links = pairs.where(F.col("match_probability") >= F.lit(link_threshold(spark)))
        row = links.orderBy("match_weight", "record_id_l", "record_id_r").first()
        if row is None:
            row = pairs.orderBy(F.col("match_weight").desc(), "record_id_l", "record_id_r").first()
        if row is None:
            raise ValueError("mpi.scored_pairs is empty")
    terms = []
    for comparison in model.comparisons:
        gamma = row[f"gamma_{comparison.name}"]
        level = "missing" if gamma is None or gamma < 0 else comparison.levels[gamma]
        terms.append(PairTerm(comparison.name, level, float(row[weight_column(comparison.name)] or 0.0)))
    ids = [row["record_id_l"], row["record_id_r"]]
    partners = {
        r["record_id"]: r["partner"]
        for r in _table(spark, "mpi", "crosswalk")
        .where(F.col("record_id").isin(ids))
        .select("record_id", "partner")
        .collect()
    }
    return PairExplanation(
        record_id_l=row["record_id_l"],
        record_id_r=row["record_id_r"],
        partner_l=partners.get(row["record_id_l"], "?"),
        partner_r=partners.get(row["record_id_r"], "?"),
        rule=row["rule"],
        prior_weight=model.prior_log2_odds,
        terms=tuple(terms),
        match_weight=float(row["match_weight"]),
        match_probability=float(row["match_probability"]),
    )


def person_records(spark: SparkSession, person_id: str) -> pd.DataFrame:
    """The person's records in mpi.crosswalk: record_id, partner, cluster_size and match_confidence (the
    probability of the record's best link). Raises ValueError when no record has that person id."""
    records = _small(
        _table(spark, "mpi", "crosswalk")
        .where(F.col("person_id") == F.lit(person_id))
        .select("record_id", "partner", "cluster_size", "match_confidence"),
        "partner",
        "record_id",
    )
    if records.empty:
        raise ValueError(f"no record has person id {person_id} in {settings(spark).table('mpi', 'crosswalk')}")
    return records


def person_pairs(spark: SparkSession, model: FellegiSunterModel, record_ids: Sequence[str]) -> pd.DataFrame:
    """Every scored pair between `record_ids` (mpi.scored_pairs), strongest first: the blocking rule, match weight
    and probability, whether it is a link (at or above the threshold), and its three heaviest comparisons."""
    threshold = link_threshold(spark)
    pairs = _small(
        _table(spark, "mpi", "scored_pairs").where(
            F.col("record_id_l").isin(*record_ids) & F.col("record_id_r").isin(*record_ids)
        ),
        F.col("match_weight").desc(),
        "record_id_l",
        "record_id_r",
    )
    columns = ["record_id_l", "record_id_r", "rule", "match_weight", "match_probability", "linked", "strongest"]
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    names = [c.name for c in model.comparisons]

    def strongest(row: pd.Series) -> str:
        weights = sorted(((float(row[weight_column(n)] or 0.0), n) for n in names), reverse=True)
        return ", ".join(f"{n} {w:+.1f}" for w, n in weights[:3])

    pairs["linked"] = pairs["match_probability"] >= threshold
    pairs["strongest"] = pairs.apply(strongest, axis=1)
    return pairs[columns]


def _person_sizes(spark: SparkSession) -> DataFrame:
    """One row per person: person_id, n_records, n_partners, partners, weakest_link (lowest match_confidence)."""
    return (
        _table(spark, "mpi", "crosswalk")
        .groupBy("person_id")
        .agg(
            F.count(F.lit(1)).alias("n_records"),
            F.count_distinct("partner").alias("n_partners"),
            F.array_join(F.sort_array(F.collect_set("partner")), ", ").alias("partners"),
            F.min("match_confidence").alias("weakest_link"),
        )
    )


def cluster_sizes(spark: SparkSession) -> pd.DataFrame:
    """One row per cluster size (records per person): n_persons of that size and the records they hold."""
    return _small(
        _person_sizes(spark)
        .groupBy("n_records")
        .agg(F.count(F.lit(1)).alias("n_persons"))
        .withColumn("records", F.col("n_records") * F.col("n_persons")),
        "n_records",
    )


def largest_persons(spark: SparkSession, limit: int = 10) -> pd.DataFrame:
    """The `limit` persons with the most records: person_id, n_records, n_partners, partners, weakest_link."""
    return _small(_person_sizes(spark), F.col("n_records").desc(), "person_id", limit=limit)


def suspicious_persons(spark: SparkSession, limit: int = 10) -> pd.DataFrame:
    """Persons worth a look, most suspicious first: those whose records carry several distinct SSN tokens, student
    id tokens or birth dates (counts only, never the values), then those held together by the weakest link;
    `was_split` says the conflict step already rebuilt their cluster (mpi.cluster_splits)."""
    records = _table(spark, "silver", "person_records").select("record_id", "ssn_token", "ssid_token", "birth_date")
    splits = _table(spark, "mpi", "cluster_splits").select("record_id").distinct().withColumn("in_split", F.lit(True))
    persons = (
        _table(spark, "mpi", "crosswalk")
        .select("record_id", "person_id", "partner", "match_confidence")
        .join(records, on="record_id", how="left")
        .join(splits, on="record_id", how="left")
        .groupBy("person_id")
        .agg(
            F.count(F.lit(1)).alias("n_records"),
            F.count_distinct("partner").alias("n_partners"),
            F.count_distinct("ssn_token").alias("n_ssns"),
            F.count_distinct("ssid_token").alias("n_student_ids"),
            F.count_distinct("birth_date").alias("n_birth_dates"),
            F.min("match_confidence").alias("weakest_link"),
            F.coalesce(F.max("in_split"), F.lit(False)).alias("was_split"),
        )
        .where(F.col("n_records") > 1)
    )
    conflicts = sum(
        (F.when(F.col(c) > 1, F.lit(1)).otherwise(F.lit(0)) for c in ("n_ssns", "n_student_ids", "n_birth_dates")),
        F.lit(0),
    )
    return _small(
        persons.withColumn("n_conflicting_fields", conflicts),
        F.col("n_conflicting_fields").desc(),
        "weakest_link",
        "person_id",
        limit=limit,
    )


def cluster_splits(spark: SparkSession) -> pd.DataFrame:
    """One row per cluster the conflict step rebuilt (mpi.cluster_splits): records, parts and why."""
    return _small(
        _table(spark, "mpi", "cluster_splits")
        .groupBy("old_cluster_id", "reason")
        .agg(F.count(F.lit(1)).alias("n_records"), F.count_distinct("cluster_id").alias("n_parts")),
        F.col("n_records").desc(),
        "old_cluster_id",
    )


# --------------------------------------------------------------------------------------------------
# student pathways (public, suppressed)

FLOW_STAGES: tuple[tuple[str, str], ...] = (
    ("n_graduates", "high-school\ngraduates"),
    ("n_enrolled_within_1yr", "in college\nwithin 1 year"),
    ("n_enrolled_ever", "in college\nwithin 8 years"),
    ("n_completed", "completed\nan award"),
    ("n_employed_yr1", "employed\n1 year after"),
)
"""The pathway from graduation to earnings: mart count columns and their chart labels."""
EARNINGS_YEARS = (1, 3, 5)
PATHWAY_KEYS = ("cohort_year", "geography_level", "county_code", "district_code", "group_dimension", "group_value")


def public_pathways(
    spark: SparkSession,
    geography_level: str = "state",
    county_code: str | None = None,
    district_code: str | None = None,
) -> pd.DataFrame:
    """public.student_pathways rows of one geography (the state, a county by `county_code`, or a district by
    `county_code` and `district_code`): keys, follow_up_months, every value and beside each its
    suppression_<column> reason (primary, complementary, or null when shown)."""
    needed = {"state": (), "county": (county_code,), "district": (county_code, district_code)}
    if geography_level not in needed:
        raise ValueError(f"geography_level must be one of {sorted(needed)}, got {geography_level!r}")
    if any(code is None for code in needed[geography_level]):
        raise ValueError(f"geography_level {geography_level!r} needs county_code (and district_code for a district)")
    frame = _table(spark, "public", "student_pathways").where(F.col("geography_level") == F.lit(geography_level))
    if county_code is not None:
        frame = frame.where(F.col("county_code") == F.lit(county_code))
    if district_code is not None:
        frame = frame.where(F.col("district_code") == F.lit(district_code))
    values = [c for c in frame.columns if f"{SUPPRESSION_PREFIX}{c}" in frame.columns]
    wanted = [*PATHWAY_KEYS, "follow_up_months", *values, *(f"{SUPPRESSION_PREFIX}{c}" for c in values)]
    return _small(frame.select(*wanted), "cohort_year", "group_dimension", "group_value")


def default_cohort(pathways: pd.DataFrame, min_follow_up_months: int = 72) -> int:
    """The cohort with the most published (unsuppressed) pathway values among those followed at least
    `min_follow_up_months` (all cohorts when none is); ties go to the most recent."""
    stages = [column for column, _ in FLOW_STAGES]
    followed = pathways[pathways["follow_up_months"] >= min_follow_up_months]
    candidates = followed if len(followed) else pathways
    if not len(candidates):
        raise ValueError("no pathway rows")
    shown = candidates.assign(shown=candidates[stages].notna().sum(axis=1)).groupby("cohort_year")["shown"].sum()
    best = shown[shown == shown.max()]
    return int(max(best.index))


def suppression_summary(spark: SparkSession) -> pd.DataFrame:
    """Per geography level of public.student_pathways: rows, rows with a suppressed value, and how the
    n_graduates cells were published (shown, primary, complementary)."""
    reason = F.col(f"{SUPPRESSION_PREFIX}n_graduates")
    return _small(
        _table(spark, "public", "student_pathways")
        .groupBy("geography_level")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.count_if(F.col("is_suppressed")).alias("rows_with_suppression"),
            F.count_if(reason.isNull()).alias("graduates_shown"),
            F.count_if(reason == F.lit("primary")).alias("graduates_primary"),
            F.count_if(reason == F.lit("complementary")).alias("graduates_complementary"),
        ),
        "geography_level",
    )


# --------------------------------------------------------------------------------------------------
# data quality


def quarantine_counts(spark: SparkSession) -> pd.DataFrame:
    """Rejected rows per stage, partner, feed, rule and column (quarantine.rejected_rows; never the raw text)."""
    return _small(
        _table(spark, "quarantine", "rejected_rows")
        .groupBy("stage", "partner", "feed", "rule", "column")
        .agg(F.count(F.lit(1)).alias("n_rows")),
        F.col("n_rows").desc(),
        "stage",
        "partner",
        "feed",
        "rule",
    )


def quarantine_lines(spark: SparkSession, limit: int = 20) -> pd.DataFrame:
    """The latest rejected rows: where they were (file and line) and why. The `raw` column (the delivered line,
    which holds names and identifiers) is never read; reasons quote no value of a PII column."""
    return _small(
        _table(spark, "quarantine", "rejected_rows").select(
            "rejected_at", "stage", "partner", "feed", "delivery_id", "source_file", "line_number", "rule", "reason"
        ),
        F.col("rejected_at").desc(),
        "source_file",
        "line_number",
        limit=limit,
    )


def deliveries(spark: SparkSession) -> pd.DataFrame:
    """ops.deliveries: each delivery's status and rows in its files, in bronze and in quarantine."""
    return _small(
        _table(spark, "ops", "deliveries").select(
            "ingested_at",
            "partner",
            "feed",
            "delivery_id",
            "status",
            "rows_in_files",
            "rows_bronze",
            "rows_quarantined",
        ),
        "ingested_at",
        "partner",
        "feed",
    )


def expectation_outcomes(spark: SparkSession, run_id: str | None = None) -> pd.DataFrame:
    """ops.expectation_results of one pipeline run (default: the latest that checked any): per expectation its
    check, action on violation, rows checked and violating, and outcome (passed, warned, dropped, failed)."""
    results = _table(spark, "ops", "expectation_results")
    if run_id is None:
        latest = results.orderBy(F.col("checked_at").desc()).select("run_id").first()
        if latest is None:
            return _small(results.drop("example"), limit=0)
        run_id = latest["run_id"]
    return _small(
        results.where(F.col("run_id") == F.lit(run_id)).select(
            "run_id",
            "partner",
            "feed",
            "expectation",
            "check",
            "on_violation",
            "rows_checked",
            "rows_violating",
            "outcome",
        ),
        "partner",
        "feed",
        "expectation",
    )


def rows_by_run(spark: SparkSession) -> pd.DataFrame:
    """Rows of every table a pipeline stage wrote, per run (ops.pipeline_runs figures): run_id, run_started_at,
    stage, table, rows. Bronze reports the rows its deliveries added, as one table `bronze (rows ingested)`."""
    runs = _table(spark, "ops", "pipeline_runs")
    started = runs.groupBy("run_id").agg(F.min("started_at").alias("run_started_at"))
    per_table = runs.select(
        "run_id",
        "stage",
        F.explode(F.from_json(F.get_json_object("figures", "$.rows"), "map<string,bigint>")).alias("table", "rows"),
    )
    bronze = runs.where(F.col("stage") == F.lit("bronze")).select(
        "run_id",
        "stage",
        F.lit("bronze (rows ingested)").alias("table"),
        F.get_json_object("figures", "$.rows_bronze").cast("bigint").alias("rows"),
    )
    return _small(
        per_table.unionByName(bronze)
        .where(F.col("rows").isNotNull())
        .join(started, on="run_id", how="inner")
        .select("run_id", "run_started_at", "stage", "table", "rows"),
        "run_started_at",
        "stage",
        "table",
    )


def stage_durations(spark: SparkSession) -> pd.DataFrame:
    """ops.pipeline_runs: one row per stage of each run with its status and seconds, in order of start."""
    return _small(
        _table(spark, "ops", "pipeline_runs").select("run_id", "stage", "status", "started_at", "seconds", "error"),
        "started_at",
    )


def delta_history(spark: SparkSession, table: str, limit: int = 50) -> pd.DataFrame:
    """The Delta log of `table`, newest first: version, time, operation, rows written (new files) and merged
    (inserted, updated, deleted), and the commit's tag (`run <run id> stage <stage>`)."""
    metric = F.col("operationMetrics")
    return (
        spark.sql(f"DESCRIBE HISTORY {table} LIMIT {int(limit)}")
        .select(
            "version",
            "timestamp",
            "operation",
            metric.getItem("numOutputRows").cast("bigint").alias("rows_written"),
            metric.getItem("numTargetRowsInserted").cast("bigint").alias("rows_inserted"),
            metric.getItem("numTargetRowsUpdated").cast("bigint").alias("rows_updated"),
            metric.getItem("numTargetRowsDeleted").cast("bigint").alias("rows_deleted"),
            F.col("userMetadata").alias("tag"),
        )
        .toPandas()
    )


# --------------------------------------------------------------------------------------------------
# charts


class Chart(Figure):
    """A matplotlib Figure that shows itself as a PNG when it is a notebook cell's value, whatever the backend
    (it is not registered with pyplot, so it is shown once and never leaks)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()


def _figure(width: float, height: float) -> Chart:
    return Chart(figsize=(width, height), layout="constrained")


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="dimgray")
    ax.set_xticks([])
    ax.set_yticks([])


def _suppressed_patch() -> Patch:
    return Patch(facecolor=SUPPRESSED_COLOR, alpha=0.35, hatch="//", label="suppressed (S)")


def plot_m_u(levels: pd.DataFrame) -> Figure:
    """One panel per comparison: m (same person) and u (different people) of each level, log scale."""
    comparisons = list(dict.fromkeys(levels["comparison"]))
    ncols = 2
    nrows = max(1, math.ceil(len(comparisons) / ncols))
    figure = _figure(11, 2.1 * nrows + 0.8)
    axes = figure.subplots(nrows, ncols, squeeze=False)
    for ax, comparison in zip(axes.flat, comparisons, strict=False):
        rows = levels[levels["comparison"] == comparison]
        positions = list(range(len(rows)))
        ax.barh([p - 0.2 for p in positions], rows["m"], height=0.4, color="tab:blue", label="m: same person")
        ax.barh([p + 0.2 for p in positions], rows["u"], height=0.4, color="tab:orange", label="u: different people")
        ax.set_xscale("log")
        ax.set_xlim(1e-10, 2)
        ax.set_yticks(positions, list(rows["level"]), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(comparison, fontsize=10)
    for ax in list(axes.flat)[len(comparisons) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper right", ncols=2, fontsize=8)
    figure.suptitle("m and u probability of each comparison level (log scale)")
    return figure


def plot_weight_histogram(histogram: pd.DataFrame, threshold_probability: float) -> Figure:
    """Stacked histogram of the scored pairs' match weights (by ground truth when known), with the threshold."""
    figure = _figure(10, 4)
    ax = figure.add_subplot()
    if not len(histogram):
        _empty(ax, "no scored pairs")
        return figure
    steps = histogram["bin_start"].diff().dropna()
    width = float(steps.min()) if len(steps) else 1.0
    bottom = [0.0] * len(histogram)
    series = (
        ("same_person", "same true person", "tab:green"),
        ("different_people", "different true people", "tab:red"),
        ("unknown", "no ground truth", "tab:gray"),
    )
    for column, label, color in series:
        values = [float(v) for v in histogram[column]]
        if sum(values) == 0:
            continue
        ax.bar(
            histogram["bin_start"], values, width=width * 0.95, bottom=bottom, align="edge", color=color, label=label
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    threshold = probability_to_weight(threshold_probability)
    ax.axvline(
        threshold, color="black", linestyle="--", linewidth=1, label=f"link threshold (p = {threshold_probability})"
    )
    ax.set_yscale("log")
    ax.set_xlabel("match weight (bits: prior log2-odds + every comparison's weight)")
    ax.set_ylabel("scored pairs (log scale)")
    ax.set_title("Match-weight distribution of the scored pairs")
    ax.legend(loc="upper right", fontsize=8)
    return figure


def plot_waterfall(explanation: PairExplanation, threshold_probability: float) -> Figure:
    """The pair's match weight built term by term: the prior, then each comparison's weight, then the total."""
    figure = _figure(11, 4.8)
    ax = figure.add_subplot()
    labels, starts, heights, colors = ["prior"], [0.0], [explanation.prior_weight], [NEGATIVE_COLOR]
    running = explanation.prior_weight
    for term in explanation.terms:
        labels.append(f"{term.comparison}\n{term.level}")
        starts.append(running)
        heights.append(term.weight)
        colors.append(POSITIVE_COLOR if term.weight > 0 else NEGATIVE_COLOR if term.weight < 0 else SUPPRESSED_COLOR)
        running += term.weight
    labels.append("match\nweight")
    starts.append(0.0)
    heights.append(explanation.match_weight)
    colors.append("tab:blue")
    positions = list(range(len(labels)))
    for position, start, height, color in zip(positions, starts, heights, colors, strict=True):
        if height == 0:  # no evidence: a thin mark at the running total
            ax.plot([position - 0.4, position + 0.4], [start, start], color="dimgray", linewidth=2)
        else:
            ax.bar(position, height, bottom=start, color=color, edgecolor="black", linewidth=0.5)
        end = start + height
        ax.annotate(
            f"{height:+.1f}",
            (position, end),
            xytext=(0, 3 if height >= 0 else -3),
            textcoords="offset points",
            ha="center",
            va="bottom" if height >= 0 else "top",
            fontsize=8,
        )
    threshold = probability_to_weight(threshold_probability)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.axhline(
        threshold, color="black", linestyle="--", linewidth=1, label=f"link threshold (p = {threshold_probability})"
    )
    ends = [s + h for s, h in zip(starts, heights, strict=True)] + [0.0, threshold]
    span = max(ends) - min(ends)
    ax.set_ylim(min(ends) - 0.12 * span, max(ends) + 0.12 * span)
    ax.set_xticks(positions, labels, fontsize=7)
    ax.set_ylabel("match weight (bits)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(
        f"Pair {explanation.record_id_l[:10]}… ({explanation.partner_l}) and {explanation.record_id_r[:10]}… "
        f"({explanation.partner_r}), blocked by {explanation.rule}\n"
        f"match weight {explanation.match_weight:.2f} bits, probability {explanation.match_probability:.4f}",
        fontsize=10,
    )
    return figure


def plot_cluster_sizes(sizes: pd.DataFrame) -> Figure:
    """Persons per cluster size (records per person)."""
    figure = _figure(10, 3.5)
    ax = figure.add_subplot()
    if not len(sizes):
        _empty(ax, "no persons")
        return figure
    ax.bar(sizes["n_records"], sizes["n_persons"], color="tab:blue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("records per person (cluster size)")
    ax.set_ylabel("persons")
    ax.set_title("Cluster-size distribution")
    return figure


def plot_threshold_curve(curve: pd.DataFrame, threshold_probability: float, metrics: pd.DataFrame) -> Figure:
    """Pairwise precision and recall against the threshold, with the configured threshold and the figures of the
    latest run's clusters (mpi.linkage_metrics) as points."""
    figure = _figure(10, 4)
    ax = figure.add_subplot()
    ax.plot(curve["threshold_weight"], curve["precision"], color="tab:blue", label="precision (pairs)")
    ax.plot(curve["threshold_weight"], curve["recall"], color="tab:orange", label="recall (pairs)")
    threshold = probability_to_weight(threshold_probability)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold p = {threshold_probability}")
    if len(metrics):
        latest = metrics.iloc[0]
        ax.scatter(
            [threshold], [latest["precision"]], color="tab:blue", marker="D", zorder=3, label="precision (clusters)"
        )
        ax.scatter([threshold], [latest["recall"]], color="tab:orange", marker="D", zorder=3, label="recall (clusters)")
    ax.set_xlabel("threshold as a match weight (bits); probability = 1 / (1 + 2^-weight)")
    ax.set_ylabel("share")
    ax.set_ylim(0, 1.05)
    ax.set_title("Precision and recall if pairs were linked at each threshold")
    ax.legend(loc="lower left", fontsize=8)
    return figure


def _suppression_band(ax: Axes, x: float, width: float, reason: str | None) -> None:
    """Mark a cell that has no published value: a hatched band over the whole height when it was suppressed (S),
    a plain one when there was nothing to measure (-)."""
    ax.axvspan(x - width / 2, x + width / 2, color=SUPPRESSED_COLOR, alpha=0.35, hatch="//" if reason else None, lw=0)
    ax.text(x, 0.02, "S" if reason else "-", transform=ax.get_xaxis_transform(), ha="center", fontsize=8)


def _reason(row: pd.Series, column: str) -> str | None:
    value = row.get(f"{SUPPRESSION_PREFIX}{column}")
    return None if value is None or pd.isna(value) else str(value)


def plot_cohorts(frame: pd.DataFrame, series: Mapping[str, str], title: str, ylabel: str = "students") -> Figure:
    """One line per column of `series` (column -> label) over cohort_year. A cohort whose first column has no
    value is a band, hatched and marked S when the public table suppressed it (its suppression_<column>)."""
    figure = _figure(10, 4)
    ax = figure.add_subplot()
    frame = frame.sort_values("cohort_year")
    for column, label in series.items():
        ax.plot(frame["cohort_year"], frame[column], marker="o", label=label)
    first = next(iter(series))
    suppressed = False
    for _, row in frame.iterrows():
        if pd.isna(row[first]):
            reason = _reason(row, first)
            suppressed = suppressed or reason is not None
            _suppression_band(ax, float(row["cohort_year"]), 0.8, reason)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=[*handles, _suppressed_patch()] if suppressed else handles, loc="upper left", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("cohort (spring year of high-school graduation)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return figure


def _by(dimension: str) -> str:
    """'by gender', or 'all students' for the dimension of everyone."""
    return "all students" if dimension == "all" else f"by {dimension}"


def _group_label(dimension: str, value: object) -> str:
    return "all students" if dimension == "all" else f"{dimension} = {value}"


def _groups(frame: pd.DataFrame, cohort_year: int, dimension: str) -> pd.DataFrame:
    rows = frame[(frame["cohort_year"] == cohort_year) & (frame["group_dimension"] == dimension)]
    if not len(rows):
        known = sorted(set(frame["group_dimension"]))
        raise ValueError(f"no rows for cohort {cohort_year} and dimension {dimension!r} (dimensions: {known})")
    return rows.sort_values("group_value")


def plot_flow(frame: pd.DataFrame, cohort_year: int, dimension: str) -> Figure:
    """One panel per student group of `dimension`: the cohort's students at each step from graduation to a job,
    as published; suppressed steps are hatched bands marked S."""
    groups = _groups(frame, cohort_year, dimension)
    ncols = min(3, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    figure = _figure(max(8.0, 4.2 * ncols), 3.0 * nrows + 0.8)
    axes = figure.subplots(nrows, ncols, squeeze=False, sharey=True)
    positions = list(range(len(FLOW_STAGES)))
    published = groups[[column for column, _ in FLOW_STAGES]].stack()
    top = float(published.max()) if len(published) else 1.0
    for ax, (_, row) in zip(axes.flat, groups.iterrows(), strict=False):
        for position, (column, _) in zip(positions, FLOW_STAGES, strict=True):
            value = row[column]
            if pd.isna(value):
                _suppression_band(ax, position, 0.8, _reason(row, column))
            else:
                ax.bar(position, float(value), color="tab:blue", width=0.8)
                ax.text(position, float(value), f"{int(value):,}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(positions, [label for _, label in FLOW_STAGES], fontsize=7)
        ax.set_title(_group_label(dimension, row["group_value"]), fontsize=9)
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    # Once for all panels (they share the axis), above the tallest bar of any group and its label.
    axes[0][0].set_ylim(0, top * 1.12)
    axes[0][0].set_ylabel("students")
    figure.legend(handles=[_suppressed_patch()], loc="outside upper right", fontsize=8)
    figure.suptitle(f"Cohort {cohort_year}: from high-school graduation to a job, {_by(dimension)}")
    return figure


def plot_earnings(frame: pd.DataFrame, cohort_year: int, dimension: str) -> Figure:
    """Median annual earnings (bar) and 25th-75th percentiles (line) 1, 3 and 5 years after the award, by group;
    suppressed values are hatched bands marked S, values with no one to measure are marked -."""
    groups = _groups(frame, cohort_year, dimension)
    figure = _figure(max(8.0, 1.6 * len(groups) + 3), 4)
    ax = figure.add_subplot()
    width = 0.8 / len(EARNINGS_YEARS)
    for index, year in enumerate(EARNINGS_YEARS):
        median, p25, p75 = (f"earnings_{s}_yr{year}" for s in ("median", "p25", "p75"))
        for position, (_, row) in enumerate(groups.iterrows()):
            x = position - 0.4 + width * (index + 0.5)
            if pd.isna(row[median]):
                _suppression_band(ax, x, width * 0.9, _reason(row, median))
                continue
            ax.bar(x, float(row[median]), width=width * 0.9, color=f"C{index}")
            if not (pd.isna(row[p25]) or pd.isna(row[p75])):
                ax.plot([x, x], [float(row[p25]), float(row[p75])], color="black", linewidth=1)
    years = [
        Patch(color=f"C{index}", label=f"year {year} after the award") for index, year in enumerate(EARNINGS_YEARS)
    ]
    figure.legend(handles=[*years, _suppressed_patch()], loc="outside right upper", fontsize=8)
    ax.set_xticks(
        list(range(len(groups))), ["all students" if dimension == "all" else str(v) for v in groups["group_value"]]
    )
    ax.set_ylim(bottom=0)
    ax.set_xlabel("" if dimension == "all" else dimension)
    ax.set_ylabel("annual earnings, constant dollars")
    # The figure's title, not the axes': the legend outside the axes on the right takes no part of it.
    figure.suptitle(f"Cohort {cohort_year}: earnings after the award, {_by(dimension)}")
    ax.set_title("bars: median; lines: 25th to 75th percentile", fontsize=9)
    return figure


def plot_quarantine(counts: pd.DataFrame) -> Figure:
    """Rejected rows per feed and rule (stage in brackets)."""
    figure = _figure(10, max(2.5, 0.4 * len(counts) + 1.2))
    ax = figure.add_subplot()
    if not len(counts):
        _empty(ax, "no rejected rows")
        return figure
    labels = [f"{r.partner}/{r.feed}: {r.rule} ({r.stage})" for r in counts.itertuples()]
    ax.barh(labels, counts["n_rows"], color="tab:red")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.invert_yaxis()
    ax.set_xlabel("rejected rows")
    ax.set_title("Quarantine: rejected rows by feed and rule")
    return figure


OUTCOME_COLORS = {"passed": "tab:green", "warned": "tab:orange", "dropped": "tab:purple", "failed": "tab:red"}


def plot_expectations(outcomes: pd.DataFrame) -> Figure:
    """Share of checked rows violating each expectation, coloured by outcome, with the counts written beside."""
    figure = _figure(10, max(2.5, 0.4 * len(outcomes) + 1.2))
    ax = figure.add_subplot()
    if not len(outcomes):
        _empty(ax, "no expectation results")
        return figure
    labels = [f"{r.partner}/{r.feed}: {r.expectation}" for r in outcomes.itertuples()]
    shares = [(r.rows_violating / r.rows_checked) if r.rows_checked else 0.0 for r in outcomes.itertuples()]
    ax.barh(labels, shares, color=[OUTCOME_COLORS.get(str(o), "tab:gray") for o in outcomes["outcome"]])
    for position, r in enumerate(outcomes.itertuples()):
        ax.text(0, position, f" {r.outcome}: {r.rows_violating:,} of {r.rows_checked:,}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max([*shares, 0.05]) * 1.3)
    ax.set_xlabel("share of checked rows violating")
    ax.set_title(f"Expectations of run {outcomes['run_id'].iloc[0]}")
    return figure


def plot_rows_by_run(rows: pd.DataFrame) -> Figure:
    """Rows of every table a run wrote: a bar for the latest run, a dot for each earlier one (log scale)."""
    tables_written = list(dict.fromkeys(rows["table"]))
    figure = _figure(10, max(2.5, 0.22 * len(tables_written) + 1.5))
    ax = figure.add_subplot()
    if not tables_written:
        _empty(ax, "no pipeline runs")
        return figure
    runs = list(dict.fromkeys(rows.sort_values("run_started_at")["run_id"]))
    latest = rows[rows["run_id"] == runs[-1]].set_index("table")["rows"]
    positions = {table: index for index, table in enumerate(tables_written)}
    ax.barh([positions[t] for t in latest.index], latest.to_list(), color="tab:blue", label=f"latest run {runs[-1]}")
    earlier = rows[rows["run_id"] != runs[-1]]
    if len(earlier):
        ax.scatter(
            earlier["rows"],
            [positions[t] for t in earlier["table"]],
            color="black",
            s=12,
            label="earlier runs",
            zorder=3,
        )
    ax.set_yticks(list(positions.values()), tables_written, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("rows (log scale)")
    ax.set_title(f"Rows per table written by the pipeline: {len(runs)} run(s)")
    ax.legend(loc="lower right", fontsize=8)
    return figure


def plot_stage_durations(durations: pd.DataFrame) -> Figure:
    """Seconds each stage took, stacked per run (failed stages hatched)."""
    figure = _figure(10, 3.5)
    ax = figure.add_subplot()
    if not len(durations):
        _empty(ax, "no pipeline runs")
        return figure
    runs = list(dict.fromkeys(durations["run_id"]))
    bottoms = dict.fromkeys(runs, 0.0)
    colors = {stage: f"C{index}" for index, stage in enumerate(dict.fromkeys(durations["stage"]))}
    labelled: set[str] = set()
    for row in durations.itertuples():
        seconds = float(row.seconds or 0.0)
        ax.barh(
            runs.index(row.run_id),
            seconds,
            left=bottoms[row.run_id],
            color=colors[row.stage],
            hatch=None if row.status == "succeeded" else "xx",
            label=None if row.stage in labelled else row.stage,
        )
        labelled.add(row.stage)
        bottoms[row.run_id] += seconds
    ax.set_yticks(list(range(len(runs))), runs, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title("Pipeline runs: seconds per stage")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def plot_delta_history(history: pd.DataFrame, table: str) -> Figure:
    """Rows each Delta version of `table` wrote to new files, and for merges the rows inserted, updated, deleted."""
    figure = _figure(10, 3.8)
    ax = figure.add_subplot()
    if not len(history):
        _empty(ax, f"{table} has no history")
        return figure
    versions = history.sort_values("version")
    series = (
        ("rows_written", "written to new files", "tab:blue"),
        ("rows_inserted", "merge: inserted", "tab:green"),
        ("rows_updated", "merge: updated", "tab:orange"),
        ("rows_deleted", "merge: deleted", "tab:red"),
    )
    shown = [s for s in series if versions[s[0]].fillna(0).sum() > 0]
    width = 0.8 / max(1, len(shown))
    positions = list(range(len(versions)))
    for index, (column, label, color) in enumerate(shown):
        offsets = [p - 0.4 + width * (index + 0.5) for p in positions]
        ax.bar(offsets, versions[column].fillna(0), width=width, color=color, label=label)
    if len(versions) <= 10:
        ticks = [f"v{v.version}\n{textwrap.fill(v.operation, 14)}" for v in versions.itertuples()]
    else:  # too many to name each operation: the history table has them
        ticks = [f"v{v.version}" for v in versions.itertuples()]
    ax.set_xticks(positions, ticks, fontsize=7)
    ax.set_ylabel("rows")
    ax.set_title(f"{table}: rows per Delta version")
    if shown:
        ax.legend(fontsize=8)
    return figure
