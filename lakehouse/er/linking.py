"""The linkage run: silver.person_records -> the mpi tables, with the engine conf/matching.yaml names.

probabilistic (the default): comparison features, blocking, comparison levels, a Fellegi-Sunter model trained
without labels, scored pairs, links at or above model.threshold, connected components, and clusters with
incompatible records split (`conflicts`). deterministic (the foundation's baseline): every pair of a
deterministic rule is a match.

Either way every cluster (a singleton included) gets a person id derived from its smallest record_id. Tables
written: mpi.capped_blocks, mpi.matched_pairs (the links) and mpi.crosswalk are replaced (the state of this run);
the probabilistic engine also replaces mpi.scored_pairs and mpi.cluster_splits and appends its model to
mpi.linkage_models; mpi.person_id_history is appended to. The history is written before the crosswalk is
replaced, because it compares the previous crosswalk with the new one. Every commit carries the run's tag
(`tables.run_tag`), which is how the next run knows whether the state it finds is one run's whole work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import BlockingRule, MatchingSettings, Settings
from lakehouse.er.blocking import block
from lakehouse.er.comparisons import (
    Comparison,
    gamma_column,
    pair_features,
    person_comparisons,
    with_gammas,
    with_similarities,
)
from lakehouse.er.components import connected_components
from lakehouse.er.conflicts import CONFLICT_COLUMNS, split_conflicts
from lakehouse.er.features import comparison_features
from lakehouse.er.ids import crosswalk, person_id_history
from lakehouse.er.incremental import PreviousLinkage, incremental_linkage
from lakehouse.er.model import FellegiSunterModel
from lakehouse.er.registry import ModelRegistry, RegisteredModel, settings_params
from lakehouse.er.schema import (
    CAPPED_COMMENTS,
    CROSSWALK_COMMENTS,
    HISTORY_COMMENTS,
    PAIR_COMMENTS,
    SCORED_PAIR_COMMENTS,
    SPLIT_COMMENTS,
)
from lakehouse.er.scoring import weight_column, with_match_weight
from lakehouse.er.training import session_flag, train_model, with_session_flags
from lakehouse.tables import (
    insert_new,
    last_write_tag,
    latest_commit_version,
    run_tag,
    table_exists,
    tagged_commits,
    with_column_comments,
    write_table,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkResult:
    """Figures of one linkage run."""

    n_records: int
    n_pairs: int
    n_persons: int
    n_capped_blocks: int
    iterations: int
    largest_cluster: int
    engine: str = "deterministic"
    n_candidate_pairs: int = 0
    n_clusters_split: int = 0
    prior: float | None = None
    model_name: str | None = None
    model_version: str | None = None
    mlflow_run_id: str | None = None
    mode: str = "full"
    n_affected_records: int | None = None


def matching_settings(settings: Settings) -> MatchingSettings:
    """settings.matching, or ValueError when conf/matching.yaml was not loaded."""
    if settings.matching is None:
        raise ValueError("settings.matching is not set: load the settings with conf/matching.yaml")
    return settings.matching


def count_records(records: DataFrame) -> int:
    """Number of person records; ValueError when a record_id is null or not unique."""
    row = records.agg(
        F.count(F.lit(1)).alias("n_records"),
        F.count("record_id").alias("n_ids"),
        F.count_distinct("record_id").alias("n_distinct_ids"),
    ).first()
    if row is None:
        raise RuntimeError("counting person records returned no row")
    n_records, n_ids, n_distinct = int(row["n_records"]), int(row["n_ids"]), int(row["n_distinct_ids"])
    if n_ids != n_records:
        raise ValueError(f"person_records: {n_records - n_ids} records have a null record_id")
    if n_distinct != n_records:
        raise ValueError(f"person_records: record_id is not unique ({n_records - n_distinct} duplicates)")
    return n_records


def crosswalk_figures(crosswalk_df: DataFrame) -> tuple[int, int]:
    """(number of persons, size of the largest); RuntimeError when two clusters got the same person id."""
    row = (
        crosswalk_df.groupBy("person_id")
        .agg(F.count(F.lit(1)).alias("n_records"), F.max("cluster_size").alias("cluster_size"))
        .agg(
            F.count(F.lit(1)).alias("n_persons"),
            F.coalesce(F.max("n_records"), F.lit(0)).alias("largest_cluster"),
            F.count_if(F.col("n_records") != F.col("cluster_size")).alias("n_collisions"),
        )
        .first()
    )
    if row is None:
        raise RuntimeError("crosswalk figures returned no row")
    if row["n_collisions"]:
        raise RuntimeError(f"{row['n_collisions']} person ids are shared by two clusters (hash collision)")
    return int(row["n_persons"]), int(row["largest_cluster"])


def link(spark: SparkSession, settings: Settings, run_id: str) -> LinkResult:
    """Link silver.person_records with the engine of conf/matching.yaml and write the mpi tables.

    Raises ValueError on a missing input table, empty run_id or malformed rules, and
    ComponentsNotConvergedError when clustering needs more than clustering.max_iterations iterations.
    """
    if not run_id:
        raise ValueError("run_id must not be empty")
    matching = matching_settings(settings)
    source = settings.table("silver", "person_records")
    if not table_exists(spark, source):
        raise ValueError(f"{source} does not exist: build silver before linking")
    records = spark.read.table(source)
    if "partner" not in records.columns:
        raise ValueError(f"{source} has no partner column")
    with tagged_commits(spark, run_tag(run_id, "link")):
        n_records = count_records(records)
        if matching.engine == "deterministic":
            return _link_deterministic(spark, settings, matching, records, n_records=n_records, run_id=run_id)
        return _link_probabilistic(spark, settings, matching, records, n_records=n_records, run_id=run_id)


def _write_capped(spark: SparkSession, settings: Settings, capped: DataFrame, run_id: str) -> int:
    capped_table = settings.table("mpi", "capped_blocks")
    write_table(
        capped.withColumn("run_id", F.lit(run_id)).transform(with_column_comments, CAPPED_COMMENTS),
        capped_table,
        comment="one row per block left out of a blocking rule because it was larger than max_block_size",
    )
    n_capped = spark.read.table(capped_table).count()
    if n_capped:
        logger.warning(
            "link run %s: %d blocks above max_block_size were capped (see %s)", run_id, n_capped, capped_table
        )
    return n_capped


def _write_links(spark: SparkSession, settings: Settings, links: DataFrame, run_id: str) -> tuple[DataFrame, int]:
    """mpi.matched_pairs replaced by `links` (record_id_l, record_id_r, rule); returns them read back and counted."""
    pairs_table = settings.table("mpi", "matched_pairs")
    write_table(
        links.select("record_id_l", "record_id_r", "rule")
        .withColumn("run_id", F.lit(run_id))
        .transform(with_column_comments, PAIR_COMMENTS),
        pairs_table,
        comment="one row per linked record pair (record_id_l < record_id_r) with the first rule that blocked it",
    )
    pairs = spark.read.table(pairs_table)  # reading the written table cuts the lineage
    return pairs, pairs.count()


def _write_persons(
    spark: SparkSession,
    settings: Settings,
    records: DataFrame,
    labels: DataFrame,
    run_id: str,
    *,
    confidence: DataFrame | None = None,
) -> tuple[int, int]:
    """Person ids from the cluster labels: history appended, crosswalk replaced; returns (persons, largest).

    The history's events are computed against one version of the previous crosswalk and appended only when
    no event of that version is there yet, so a run killed between the two writes and run again records each
    event once.
    """
    linked_at = datetime.now(UTC)
    crosswalk_table = settings.table("mpi", "crosswalk")
    previous, base_version = None, -1
    if table_exists(spark, crosswalk_table):
        base_version = latest_commit_version(spark, crosswalk_table)
        previous = spark.read.option("versionAsOf", base_version).table(crosswalk_table)
    new_crosswalk = crosswalk(
        records, labels, run_id, linked_at, confidence=confidence, previous=previous
    ).localCheckpoint(eager=True)
    events = person_id_history(previous, new_crosswalk, run_id, linked_at).withColumn(
        "crosswalk_version", F.lit(base_version)
    )
    insert_new(
        spark,
        events.transform(with_column_comments, HISTORY_COMMENTS),
        settings.table("mpi", "person_id_history"),
        keys=("crosswalk_version", "person_id", "event"),
        comment="one row per person id event per linkage run",
    )
    write_table(
        new_crosswalk.transform(with_column_comments, CROSSWALK_COMMENTS),
        crosswalk_table,
        comment="one row per person record: the person id it belongs to in the latest linkage run",
    )
    return crosswalk_figures(new_crosswalk)


def _log_result(run_id: str, result: LinkResult) -> LinkResult:
    logger.info(
        "link run %s (%s): %d records -> %d persons (largest %d records), %d links, %d capped blocks, %d iterations",
        run_id,
        result.engine,
        result.n_records,
        result.n_persons,
        result.largest_cluster,
        result.n_pairs,
        result.n_capped_blocks,
        result.iterations,
    )
    return result


def _link_deterministic(
    spark: SparkSession,
    settings: Settings,
    matching: MatchingSettings,
    records: DataFrame,
    *,
    n_records: int,
    run_id: str,
) -> LinkResult:
    """The baseline: every pair of a deterministic rule is a match."""
    logger.info(
        "link run %s: %d person records, %d deterministic rules", run_id, n_records, len(matching.deterministic_rules)
    )
    blocking = block(records, matching.deterministic_rules)
    n_capped = _write_capped(spark, settings, blocking.capped, run_id)
    pairs, n_pairs = _write_links(spark, settings, blocking.pairs, run_id)
    logger.info("link run %s: %d matched pairs", run_id, n_pairs)
    components = connected_components(pairs, matching.clustering.max_iterations)
    n_persons, largest = _write_persons(spark, settings, records, components.labels, run_id)
    return _log_result(
        run_id,
        LinkResult(
            n_records=n_records,
            n_pairs=n_pairs,
            n_persons=n_persons,
            n_capped_blocks=n_capped,
            iterations=components.iterations,
            largest_cluster=largest,
            engine="deterministic",
            n_candidate_pairs=n_pairs,
        ),
    )


def training_rules(matching: MatchingSettings) -> tuple[BlockingRule, ...]:
    by_name = {rule.name: rule for rule in matching.blocking}
    return tuple(by_name[name] for name in matching.model.training_rules)


Materialize = Callable[[DataFrame], DataFrame]
"""Stores a DataFrame and returns it read back with a fresh lineage (a Delta table, or a local checkpoint)."""


def checkpointed(frame: DataFrame) -> DataFrame:
    """`Materialize` without a table: an eager local checkpoint (the executors keep the rows)."""
    return frame.localCheckpoint(eager=True)


@dataclass(frozen=True)
class Linkage:
    """What the probabilistic engine computed, nothing written (see `probabilistic_linkage`).

    scored: record_id_l, record_id_r, rule, gamma_*, weight_*, match_weight, match_probability for the pairs at or
    above model.min_stored_probability; links: those at or above the threshold; labels: record_id, cluster_id
    for every record (conflicts split); rebuilt: the records of rebuilt clusters (`split_conflicts`);
    confidence: record_id, match_confidence.
    """

    features: DataFrame
    capped: DataFrame
    model: FellegiSunterModel
    scored: DataFrame
    links: DataFrame
    labels: DataFrame
    rebuilt: DataFrame
    confidence: DataFrame
    n_candidate_pairs: int
    pairs_per_rule: dict[str, int]
    iterations: int
    trained: bool
    mode: str = "full"
    n_affected_records: int | None = None
    """Records whose clusters were recomputed (incremental runs; a full run recomputes all)."""
    step_seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds per step (features, blocking, comparisons, training, scoring, clustering, conflict splits)."""


class StepClock:
    """Wall seconds of the linkage's steps, each logged as it ends. The steps materialize what they compute
    (checkpoints, collected counts), so a lap holds the step's own Spark work, not a later one's."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = round(now - self._last, 3)
        self._last = now
        logger.info("linkage: %s in %.1f s", step, self.seconds[step])


def scored_columns(comparisons: Sequence[Comparison]) -> list[str]:
    return [
        "record_id_l",
        "record_id_r",
        "rule",
        *[gamma_column(c.name) for c in comparisons],
        *[weight_column(c.name) for c in comparisons],
        "match_weight",
        "match_probability",
    ]


def probabilistic_linkage(
    records: DataFrame,
    matching: MatchingSettings,
    *,
    model: FellegiSunterModel | None = None,
    threshold: float | None = None,
    across: str | None = None,
    store_scored: Materialize = checkpointed,
    on_capped: Callable[[DataFrame], None] | None = None,
    n_records: int | None = None,
) -> Linkage:
    """Features, blocking, comparisons, training (unless `model` is given), scoring, clustering, conflict splits.

    Args:
        records: one row per record with the standardized columns of silver.person_records (record_id unique;
            identity columns a source lacks may be absent).
        model: a trained model to score with; None trains one on `records`.
        threshold: match probability that links a pair (default model.threshold of `matching`).
        across: a column of `records`; when given only pairs whose two records differ in it are candidates
            (linking two inputs to each other).
        store_scored: how the scored pairs are stored and read back (the mpi writes a Delta table).
        on_capped: called with the capped blocks (rule, block_key_hash, block_size) once they are known.
        n_records: the number of records, when the caller has counted them already.
    """
    clock = StepClock()
    link_threshold = matching.model.threshold if threshold is None else threshold
    if n_records is None:
        n_records = records.count()
    features = comparison_features(
        records,
        max_birth_dates_per_identifier=matching.model.max_birth_dates_per_identifier,
        max_broadcast_lookup_rows=matching.model.max_broadcast_lookup_rows,
    ).localCheckpoint(eager=True)
    clock.lap("features")
    comparisons = person_comparisons(matching.model)
    if model is not None:
        check_model(model, comparisons)
    trainers = training_rules(matching)
    fallbacks = [rule for rule in matching.blocking if rule not in trainers]
    sessions = [*trainers, *fallbacks]
    carry = list(dict.fromkeys([*pair_features(comparisons), *[c for rule in sessions for c in rule.columns]]))
    if across is not None and across not in features.columns:
        features = features.join(records.select("record_id", across), on="record_id", how="inner")
    blocking = block(
        features,
        matching.blocking,
        carry,
        across=across,
        broadcast_records=n_records <= matching.model.max_broadcast_records,
    )
    if on_capped is not None:
        on_capped(blocking.capped)
    clock.lap("blocking")

    candidates = compare_pairs(blocking.pairs, comparisons, sessions).localCheckpoint(eager=True)
    capped = blocking.capped
    # The checkpoint cut the pairs' lineage: once nothing refers to them, Spark's cleaner can delete their shuffle
    # files (the largest of the stage: 33 GiB for the wide feature join at a million people, docs/performance.md).
    del blocking
    clock.lap("comparisons")
    if model is None:
        model = train_model(
            features,
            candidates,
            comparisons,
            trainers,
            settings=matching.model,
            n_records=n_records,
            fallback_rules=fallbacks,
        )
        n_candidates = int(model.training["n_candidate_pairs"])  # type: ignore[call-overload]
        trained = True
    else:
        n_candidates = candidates.count()
        trained = False
    clock.lap("training")

    scored = store_scored(
        candidates.transform(with_match_weight, model)
        .where(F.col("match_probability") >= F.lit(matching.model.min_stored_probability))
        .select(*scored_columns(comparisons))
    )
    clock.lap("scoring")
    links = scored.where(F.col("match_probability") >= F.lit(link_threshold))
    link_weights = links.select("record_id_l", "record_id_r", "match_weight", "match_probability")
    components = connected_components(links.select("record_id_l", "record_id_r"), matching.clustering.max_iterations)
    clock.lap("clustering")
    clustered = (
        features.select(*CONFLICT_COLUMNS)
        .join(components.labels, on="record_id", how="left")
        .withColumn("cluster_id", F.coalesce(F.col("cluster_id"), F.col("record_id")))
    )
    labels, rebuilt = split_conflicts(
        clustered, link_weights, matching.clustering.max_cluster_size, matching.model.strong_threshold
    )
    labels = labels.localCheckpoint(eager=True)
    clock.lap("conflict splits")
    return Linkage(
        features=features,
        capped=capped,
        model=model,
        scored=scored,
        links=links,
        labels=labels,
        rebuilt=rebuilt,
        confidence=link_confidence(link_weights, labels),
        n_candidate_pairs=n_candidates,
        pairs_per_rule=pairs_per_rule(candidates),
        iterations=components.iterations,
        trained=trained,
        step_seconds=clock.seconds,
    )


def compare_pairs(
    pairs: DataFrame, comparisons: Sequence[Comparison], sessions: Sequence[BlockingRule] = ()
) -> DataFrame:
    """Blocked pairs (carrying l_/r_ features) -> record_id_l, record_id_r, rule, gamma_* per comparison,
    is_training_<rule> per session rule, and l_/r_ term frequencies (what scoring reads)."""
    tf_columns = [c for c in pairs.columns if c.startswith("l_tf_")]
    kept = [
        "record_id_l",
        "record_id_r",
        "rule",
        *[gamma_column(c.name) for c in comparisons],
        *[session_flag(r.name) for r in sessions],
        *[f"{side}_{c[2:]}" for c in tf_columns for side in ("l", "r")],
    ]
    return (
        pairs.transform(with_similarities)
        .transform(with_gammas, comparisons)
        .transform(with_session_flags, sessions)
        .select(*kept)
    )


def pairs_per_rule(candidates: DataFrame) -> dict[str, int]:
    """Candidate pairs per blocking rule (the rule that first produced them)."""
    counts = candidates.groupBy("rule").agg(F.count(F.lit(1)).alias("n")).collect()
    return {str(r["rule"]): int(r["n"]) for r in counts}


def check_model(model: FellegiSunterModel, comparisons: Sequence[Comparison]) -> None:
    """ValueError when `model` was trained with other comparisons or levels than conf/matching.yaml defines now."""
    expected = [(c.name, c.level_names) for c in comparisons]
    actual = [(c.name, tuple(c.levels)) for c in model.comparisons]
    if expected != actual:
        raise ValueError(
            "the model's comparisons do not match conf/matching.yaml's: it was trained with "
            f"{[name for name, _ in actual]}, the configuration has {[name for name, _ in expected]} "
            "(or their levels differ); retrain it"
        )


def _link_probabilistic(
    spark: SparkSession,
    settings: Settings,
    matching: MatchingSettings,
    records: DataFrame,
    *,
    n_records: int,
    run_id: str,
) -> LinkResult:
    """`probabilistic_linkage` on silver.person_records, its results written to the mpi tables."""
    logger.info("link run %s: %d person records, %d blocking rules", run_id, n_records, len(matching.blocking))
    scored_table = settings.table("mpi", "scored_pairs")

    def store_scored(scored: DataFrame) -> DataFrame:
        write_table(
            scored.withColumn("run_id", F.lit(run_id)).transform(with_column_comments, SCORED_PAIR_COMMENTS),
            scored_table,
            comment=(
                "one row per candidate pair of the latest run scored at or above model.min_stored_probability: the "
                "level (gamma_*) and weight (weight_*, log2 Bayes factor) of every comparison, the match weight "
                "and probability"
            ),
        )
        return spark.read.table(scored_table)

    registry = ModelRegistry(settings)
    registered = None if matching.registry.retrain else registry.resolve()
    if registered is not None:
        logger.info("link run %s: scoring with registered model %s/%s", run_id, registered.name, registered.version)
    previous = None
    if registered is not None and matching.incremental:
        previous = previous_linkage(spark, settings, matching, registered)
    capped_count: list[int] = []

    def on_capped(capped: DataFrame) -> None:
        capped_count.append(_write_capped(spark, settings, capped, run_id))

    if registered is not None and previous is not None:
        linkage = _incremental(
            records, matching, registered.model, previous, store_scored=store_scored, on_capped=on_capped
        )
    else:
        linkage = probabilistic_linkage(
            records,
            matching,
            model=registered.model if registered is not None else None,
            store_scored=store_scored,
            on_capped=on_capped,
            n_records=n_records,
        )
    mlflow_run_id = registry.start_run(run_id, matching, trained=linkage.trained)
    if registered is None:
        registry.log_model(mlflow_run_id, linkage.model)
        model_name, model_version = matching.registry.model_name, registry.register(mlflow_run_id, run_id)
    else:
        model_name, model_version = registered.name, registered.version
    _write_model(
        spark,
        settings,
        linkage,
        run_id,
        model_name=model_name,
        model_version=model_version,
        mlflow_run_id=mlflow_run_id,
    )
    _, n_links = _write_links(spark, settings, linkage.links, run_id)
    logger.info(
        "link run %s: %d candidate pairs, %d links at probability >= %s",
        run_id,
        linkage.n_candidate_pairs,
        n_links,
        matching.model.threshold,
    )
    n_split = _write_splits(spark, settings, linkage.rebuilt, run_id)
    n_persons, largest = _write_persons(spark, settings, records, linkage.labels, run_id, confidence=linkage.confidence)
    result = LinkResult(
        n_records=n_records,
        n_pairs=n_links,
        n_persons=n_persons,
        n_capped_blocks=capped_count[0] if capped_count else 0,
        iterations=linkage.iterations,
        largest_cluster=largest,
        engine="probabilistic",
        n_candidate_pairs=linkage.n_candidate_pairs,
        n_clusters_split=n_split,
        prior=linkage.model.prior,
        model_name=model_name,
        model_version=model_version,
        mlflow_run_id=mlflow_run_id,
        mode=linkage.mode,
        n_affected_records=linkage.n_affected_records,
    )
    registry.log_figures(
        mlflow_run_id,
        {
            "n_records": n_records,
            "n_candidate_pairs": linkage.n_candidate_pairs,
            "n_links": n_links,
            "n_persons": n_persons,
            "largest_cluster": largest,
            "n_clusters_split": n_split,
            "n_capped_blocks": result.n_capped_blocks,
            "components_iterations": linkage.iterations,
            "incremental": 1.0 if linkage.mode == "incremental" else 0.0,
            "n_affected_records": linkage.n_affected_records if linkage.n_affected_records is not None else n_records,
            **{f"pairs.{rule}": n for rule, n in linkage.pairs_per_rule.items()},
        },
    )
    registry.finish(mlflow_run_id, model_name=model_name, model_version=model_version)
    return _log_result(run_id, result)


def settings_fingerprint(matching: MatchingSettings) -> str:
    """SHA-256 of the linkage settings that shape a result (blocking, thresholds, model settings)."""
    text = json.dumps(settings_params(matching), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def previous_linkage(
    spark: SparkSession, settings: Settings, matching: MatchingSettings, registered: RegisteredModel
) -> PreviousLinkage | None:
    """The previous run's state when this run can link incrementally, else None (the reason is logged).

    It can when the mpi tables of a probabilistic run exist, that run scored with the same registered model
    version and the same settings, and the latest write of every state table is that run's (its commit tag): a
    run killed after some of its writes leaves a mixed state, and the next run links in full.
    """
    names = ("crosswalk", "scored_pairs", "linkage_models", "cluster_splits", "capped_blocks")
    tables = {name: settings.table("mpi", name) for name in names}
    missing = [t for t in tables.values() if not table_exists(spark, t)]
    if missing:
        logger.info("full link: no previous state (%s missing)", ", ".join(missing))
        return None
    models = spark.read.table(tables["linkage_models"])
    if "settings_fingerprint" not in models.columns:
        logger.info("full link: %s predates incremental linking", tables["linkage_models"])
        return None
    last = models.orderBy(F.desc("linked_at")).first()
    if last is None:
        return None
    if (last["model_name"], last["model_version"]) != (registered.name, registered.version):
        logger.info(
            "full link: the previous run scored with %s/%s, this one with %s/%s",
            last["model_name"],
            last["model_version"],
            registered.name,
            registered.version,
        )
        return None
    if last["settings_fingerprint"] != settings_fingerprint(matching):
        logger.info("full link: the linkage settings changed since the previous run")
        return None
    tag = run_tag(last["run_id"], "link")
    strays = [t for t in tables.values() if last_write_tag(spark, t) != tag]
    if strays:
        logger.info(
            "full link: %s not (all) written by the last probabilistic run %s (a run stopped half-way?)",
            ", ".join(strays),
            last["run_id"],
        )
        return None
    crosswalk = spark.read.table(tables["crosswalk"])
    logger.info("incremental link against the state of run %s", last["run_id"])
    return PreviousLinkage(
        crosswalk=crosswalk.select("record_id", "person_id").localCheckpoint(eager=True),
        scored=spark.read.table(tables["scored_pairs"]).localCheckpoint(eager=True),
        splits=spark.read.table(tables["cluster_splits"])
        .select("old_cluster_id", "record_id", "cluster_id", "reason")
        .localCheckpoint(eager=True),
        capped=spark.read.table(tables["capped_blocks"]).select("rule", "block_key_hash").localCheckpoint(eager=True),
    )


def _incremental(
    records: DataFrame,
    matching: MatchingSettings,
    model: FellegiSunterModel,
    previous: PreviousLinkage,
    *,
    store_scored: Materialize,
    on_capped: Callable[[DataFrame], None],
) -> Linkage:
    comparisons = person_comparisons(matching.model)
    check_model(model, comparisons)
    parts = incremental_linkage(
        records,
        matching,
        model,
        previous,
        threshold=matching.model.threshold,
        compare=lambda pairs: compare_pairs(pairs, comparisons),
        store_scored=store_scored,
        scored_columns=scored_columns(comparisons),
        on_capped=on_capped,
    )
    return Linkage(
        features=parts.features,
        capped=parts.capped,
        model=model,
        scored=parts.scored,
        links=parts.links,
        labels=parts.labels,
        rebuilt=parts.rebuilt,
        confidence=link_confidence(parts.link_weights, parts.labels),
        n_candidate_pairs=parts.n_candidate_pairs,
        pairs_per_rule=pairs_per_rule(parts.candidates),
        iterations=parts.iterations,
        trained=False,
        mode="incremental",
        n_affected_records=parts.n_affected_records,
    )


def link_confidence(links: DataFrame, labels: DataFrame) -> DataFrame:
    """record_id, match_confidence: the highest probability of a link from the record inside its final cluster."""
    cluster_l = labels.select(F.col("record_id").alias("record_id_l"), F.col("cluster_id").alias("cluster_l"))
    cluster_r = labels.select(F.col("record_id").alias("record_id_r"), F.col("cluster_id").alias("cluster_r"))
    kept = (
        links.join(cluster_l, on="record_id_l", how="inner")
        .join(cluster_r, on="record_id_r", how="inner")
        .where(F.col("cluster_l") == F.col("cluster_r"))
    )
    ends = kept.select(F.col("record_id_l").alias("record_id"), "match_probability").unionByName(
        kept.select(F.col("record_id_r").alias("record_id"), "match_probability")
    )
    return ends.groupBy("record_id").agg(F.max("match_probability").alias("match_confidence"))


def _write_model(
    spark: SparkSession,
    settings: Settings,
    linkage: Linkage,
    run_id: str,
    *,
    model_name: str,
    model_version: str,
    mlflow_run_id: str,
) -> None:
    """One row appended to mpi.linkage_models: the model the run scored with and where it is registered."""
    table = settings.table("mpi", "linkage_models")
    frame = spark.createDataFrame(
        [
            (
                run_id,
                linkage.model.prior,
                linkage.model.to_json(),
                datetime.now(UTC),
                model_name,
                model_version,
                mlflow_run_id,
                linkage.trained,
                linkage.mode,
                settings_fingerprint(matching_settings(settings)),
            )
        ],
        "run_id string, prior double, model_json string, linked_at timestamp, model_name string, "
        "model_version string, mlflow_run_id string, trained boolean, mode string, settings_fingerprint string",
    )
    write_table(
        frame,
        table,
        mode="append",
        merge_schema=True,
        comment=None
        if table_exists(spark, table)
        else "one row per probabilistic link run: the Fellegi-Sunter model it scored with (JSON: m, u, prior), its "
        "registered name and version in MLflow, and whether the run trained it",
    )


def _write_splits(spark: SparkSession, settings: Settings, rebuilt: DataFrame, run_id: str) -> int:
    """mpi.cluster_splits replaced by this run's rebuilt clusters; returns how many clusters were rebuilt."""
    table = settings.table("mpi", "cluster_splits")
    write_table(
        rebuilt.select("old_cluster_id", "record_id", "cluster_id", "reason", F.lit(run_id).alias("run_id")).transform(
            with_column_comments, SPLIT_COMMENTS
        ),
        table,
        comment="one row per record of a cluster rebuilt because it held incompatible records or was oversized",
    )
    row = (
        spark.read.table(table)
        .agg(F.count_distinct("old_cluster_id").alias("n_old"), F.count_distinct("cluster_id").alias("n_new"))
        .first()
    )
    n_old = int(row["n_old"]) if row else 0
    if n_old:
        logger.warning(
            "link run %s: %d clusters rebuilt into %d (see %s)", run_id, n_old, int(row["n_new"]) if row else 0, table
        )
    return n_old
