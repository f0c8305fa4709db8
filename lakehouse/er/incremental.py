"""Incremental linking: a new delivery blocked and scored against the existing index, only affected clusters redone.

With the model of the previous run (the registered version it scored with, same settings), a full re-run would
differ from the previous result only where the records changed. This module computes just that part:

1. Touched records: the records that are new (not in the previous crosswalk), and the old records whose blocks
   changed their capped status (a block that the new records pushed over max_block_size, or the reverse).
2. Candidate pairs with at least one touched record, by the same blocking rules (each rule joins the touched
   records against all records; the capped blocks are those of all records, as a full run computes them): the
   full run's pairs that touch a touched record, labelled with the same first rule.
3. The previous scored pairs between untouched surviving records keep their comparison levels and are re-scored
   with the current term frequencies (which the new records shift), so their probabilities equal a full run's.
4. Affected clusters: the previous connected components (before conflict splits) holding a removed or touched
   record, an end of a new link, or an end of a re-scored pair that crossed the link or strong threshold.
   Components, conflict splits and confidences are recomputed for the records of those components and the new
   records only; every other record keeps its previous cluster. A link between an affected and an unaffected
   record cannot exist (it would have made both affected): it is checked, and a violation stops the run.

Equal to a full run with the same model, except for one documented gap: a previous candidate pair scored below
model.min_stored_probability was not stored, so if the shift of term frequencies alone lifted it over the
threshold (from under 0.01 to 0.95, which needs the frequencies of its names to fall a hundredfold) the full run
would link it and the incremental run would not. `lakehouse run --full-relink` recomputes everything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.config import MatchingSettings
from lakehouse.er.blocking import all_capped_blocks, any_of, block, block_key_hash, has_block_key
from lakehouse.er.comparisons import pair_features, person_comparisons
from lakehouse.er.components import connected_components
from lakehouse.er.conflicts import CONFLICT_COLUMNS, split_conflicts
from lakehouse.er.features import IDENTIFIERS, TF_COLUMNS, comparison_features
from lakehouse.er.model import FellegiSunterModel
from lakehouse.er.scoring import with_match_weight

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviousLinkage:
    """The state the previous run left, materialized before this run overwrites any of it.

    crosswalk: record_id, person_id; scored: the scored pairs (record_id_l, record_id_r, rule, gamma_*, ...);
    splits: old_cluster_id, record_id, cluster_id, reason; capped: rule, block_key_hash.
    """

    crosswalk: DataFrame
    scored: DataFrame
    splits: DataFrame
    capped: DataFrame


@dataclass(frozen=True)
class IncrementalParts:
    """What `incremental_linkage` hands back to the linking run (see `linking.Linkage` for the meanings)."""

    features: DataFrame
    capped: DataFrame
    candidates: DataFrame
    scored: DataFrame
    links: DataFrame
    labels: DataFrame
    rebuilt: DataFrame
    link_weights: DataFrame
    n_candidate_pairs: int
    n_touched: int
    n_removed: int
    n_affected_records: int
    iterations: int


def _ids(frame: DataFrame, column: str = "record_id") -> DataFrame:
    return frame.select(F.col(column).alias("record_id")).distinct()


def _side(frame: DataFrame, side: str) -> DataFrame:
    """record_id -> record_id_<side>, every other column c -> <side>_c (one end of a pair)."""
    return frame.select(
        F.col("record_id").alias(f"record_id_{side}"),
        *[F.col(c).alias(f"{side}_{c}") for c in frame.columns if c != "record_id"],
    )


def _crossed(previous: Column, current: Column, level: float) -> Column:
    return (previous >= F.lit(level)) != (current >= F.lit(level))


def touched_by_capping(
    features: DataFrame, matching: MatchingSettings, capped: DataFrame, before: DataFrame
) -> DataFrame:
    """record_id of every record in a block whose capped status differs between `before` and `capped`."""
    now, then = capped.select("rule", "block_key_hash"), before.select("rule", "block_key_hash")
    changed = now.subtract(then).unionByName(then.subtract(now)).localCheckpoint(eager=True)
    changed_rules = {str(r["rule"]) for r in changed.select("rule").distinct().collect()}
    parts = [
        features.where(has_block_key(rule.columns))
        .select("record_id", block_key_hash(rule.columns).alias("block_key_hash"))
        .join(changed.where(F.col("rule") == F.lit(rule.name)), on="block_key_hash", how="inner")
        .select("record_id")
        for rule in matching.blocking
        if rule.name in changed_rules
    ]
    result = features.sparkSession.createDataFrame([], "record_id string")
    for part in parts:
        result = result.unionByName(part)
    return result.distinct()


def previous_components(previous: PreviousLinkage) -> DataFrame:
    """record_id, cluster_id (previous final cluster: smallest record_id of its person), component_id (the
    connected component before conflict splits: the split's old cluster, else the cluster)."""
    anchors = previous.crosswalk.groupBy("person_id").agg(F.min("record_id").alias("cluster_id"))
    clusters = previous.crosswalk.join(anchors, on="person_id", how="inner").select("record_id", "cluster_id")
    return clusters.join(previous.splits.select("record_id", "old_cluster_id"), on="record_id", how="left").select(
        "record_id", "cluster_id", F.coalesce("old_cluster_id", "cluster_id").alias("component_id")
    )


def incremental_linkage(
    records: DataFrame,
    matching: MatchingSettings,
    model: FellegiSunterModel,
    previous: PreviousLinkage,
    *,
    threshold: float,
    compare: Callable[[DataFrame], DataFrame],
    store_scored: Callable[[DataFrame], DataFrame],
    scored_columns: list[str],
    on_capped: Callable[[DataFrame], None] | None = None,
) -> IncrementalParts:
    """The incremental run (module docstring). `compare` turns blocked pairs into candidates with gamma_* and
    l_/r_ term frequencies; `store_scored` stores the scored pairs and reads them back."""
    model_settings = matching.model
    features = comparison_features(
        records,
        max_birth_dates_per_identifier=matching.model.max_birth_dates_per_identifier,
        max_broadcast_lookup_rows=matching.model.max_broadcast_lookup_rows,
    ).localCheckpoint(eager=True)
    comparisons = person_comparisons(model_settings)
    capped = all_capped_blocks(features, matching.blocking)
    if on_capped is not None:
        on_capped(capped)

    old_ids = _ids(previous.crosswalk)
    current_ids = features.select("record_id")
    new_ids = current_ids.join(old_ids, on="record_id", how="left_anti")
    removed = old_ids.join(current_ids, on="record_id", how="left_anti").localCheckpoint(eager=True)
    recapped = touched_by_capping(features, matching, capped, previous.capped)
    # Records whose identifier is a placeholder now: those whose number just became one have changed features.
    # (All of them are re-linked: the previous run's placeholder set is not kept.)
    placeholder_held = (
        records.select("record_id", *[F.col(t).alias(f"raw_{t}") for t, _ in IDENTIFIERS])
        .join(features.select("record_id", *[t for t, _ in IDENTIFIERS]), on="record_id", how="inner")
        .where(any_of([F.col(f"raw_{t}").isNotNull() & F.col(t).isNull() for t, _ in IDENTIFIERS]))
        .select("record_id")
    )
    touched = new_ids.unionByName(recapped).unionByName(placeholder_held).distinct().localCheckpoint(eager=True)
    marked = features.join(touched.withColumn("is_touched", F.lit(True)), on="record_id", how="left").withColumn(
        "is_touched", F.coalesce(F.col("is_touched"), F.lit(False))
    )
    blocking = block(marked, matching.blocking, list(pair_features(comparisons)), touching="is_touched", capped=capped)
    candidates = compare(blocking.pairs).localCheckpoint(eager=True)
    new_scored = (
        candidates.transform(with_match_weight, model)
        .where(F.col("match_probability") >= F.lit(model_settings.min_stored_probability))
        .select(*scored_columns)
    )

    # Previous pairs of untouched, surviving records: same levels, current term frequencies.
    stale = removed.unionByName(touched).distinct()
    tf = features.select("record_id", *[f"tf_{c}" for c in TF_COLUMNS])
    kept = (
        previous.scored.join(stale.withColumnRenamed("record_id", "record_id_l"), on="record_id_l", how="left_anti")
        .join(stale.withColumnRenamed("record_id", "record_id_r"), on="record_id_r", how="left_anti")
        .select(
            "record_id_l",
            "record_id_r",
            "rule",
            *[c for c in previous.scored.columns if c.startswith("gamma_")],
            F.col("match_probability").alias("previous_probability"),
        )
        .join(_side(tf, "l"), on="record_id_l", how="inner")
        .join(_side(tf, "r"), on="record_id_r", how="inner")
        .transform(with_match_weight, model)
        .localCheckpoint(eager=True)
    )
    crossed = kept.where(
        _crossed(F.col("previous_probability"), F.col("match_probability"), threshold)
        | _crossed(F.col("previous_probability"), F.col("match_probability"), model_settings.strong_threshold)
    )
    rescored = kept.where(F.col("match_probability") >= F.lit(model_settings.min_stored_probability)).select(
        *scored_columns
    )
    scored = store_scored(rescored.unionByName(new_scored))
    links = scored.where(F.col("match_probability") >= F.lit(threshold))
    link_weights = links.select("record_id_l", "record_id_r", "match_weight", "match_probability")

    # Affected components: every previous component a change reaches, plus the new records.
    components_before = previous_components(previous).localCheckpoint(eager=True)
    new_links = new_scored.where(F.col("match_probability") >= F.lit(threshold))
    seeds = (
        stale.unionByName(_ids(new_links, "record_id_l"))
        .unionByName(_ids(new_links, "record_id_r"))
        .unionByName(_ids(crossed, "record_id_l"))
        .unionByName(_ids(crossed, "record_id_r"))
    )
    affected_components = components_before.join(seeds, on="record_id", how="inner").select("component_id").distinct()
    affected = (
        components_before.join(affected_components, on="component_id", how="inner")
        .select("record_id")
        .join(current_ids, on="record_id", how="inner")
        .unionByName(new_ids)
        .distinct()
        .withColumn("is_affected", F.lit(True))
        .localCheckpoint(eager=True)
    )
    ends = link_weights.join(
        affected.withColumnRenamed("record_id", "record_id_l").withColumnRenamed("is_affected", "l_affected"),
        on="record_id_l",
        how="left",
    ).join(
        affected.withColumnRenamed("record_id", "record_id_r").withColumnRenamed("is_affected", "r_affected"),
        on="record_id_r",
        how="left",
    )
    inside = ends.where(F.col("l_affected") & F.col("r_affected")).drop("l_affected", "r_affected")
    n_boundary = ends.where(F.col("l_affected").isNull() != F.col("r_affected").isNull()).count()
    if n_boundary:
        raise RuntimeError(
            f"incremental linking: {n_boundary} links join an affected cluster to an unaffected one, which the "
            "method rules out; the previous mpi state is inconsistent. Run `lakehouse run --stages link --full-relink`"
        )
    inside = inside.localCheckpoint(eager=True)
    components = connected_components(inside.select("record_id_l", "record_id_r"), matching.clustering.max_iterations)
    clustered = (
        features.select(*CONFLICT_COLUMNS)
        .join(affected.select("record_id"), on="record_id", how="inner")
        .join(components.labels, on="record_id", how="left")
        .withColumn("cluster_id", F.coalesce(F.col("cluster_id"), F.col("record_id")))
    )
    labels_affected, rebuilt_affected = split_conflicts(
        clustered, inside, matching.clustering.max_cluster_size, model_settings.strong_threshold
    )
    unaffected = components_before.join(current_ids, on="record_id", how="inner").join(
        affected, on="record_id", how="left_anti"
    )
    labels = (
        unaffected.select("record_id", "cluster_id")
        .unionByName(labels_affected.select("record_id", "cluster_id"))
        .localCheckpoint(eager=True)
    )
    rebuilt = (
        previous.splits.select("old_cluster_id", "record_id", "cluster_id", "reason")
        .join(unaffected.select("record_id"), on="record_id", how="inner")
        .unionByName(rebuilt_affected.select("old_cluster_id", "record_id", "cluster_id", "reason"))
    )
    counts = (
        affected.agg(F.count(F.lit(1)).alias("n_affected"))
        .crossJoin(touched.agg(F.count(F.lit(1)).alias("n_touched")))
        .crossJoin(removed.agg(F.count(F.lit(1)).alias("n_removed")))
        .first()
    )
    n_affected = int(counts["n_affected"]) if counts else 0
    n_touched = int(counts["n_touched"]) if counts else 0
    n_removed = int(counts["n_removed"]) if counts else 0
    n_candidates = candidates.count()
    logger.info(
        "incremental linking: %d touched records (new or re-capped), %d removed, %d candidate pairs touching them, "
        "%d records in affected clusters recomputed",
        n_touched,
        n_removed,
        n_candidates,
        n_affected,
    )
    return IncrementalParts(
        features=features,
        capped=capped,
        candidates=candidates,
        scored=scored,
        links=links,
        labels=labels,
        rebuilt=rebuilt,
        link_weights=link_weights,
        n_candidate_pairs=n_candidates,
        n_touched=n_touched,
        n_removed=n_removed,
        n_affected_records=n_affected,
        iterations=components.iterations,
    )
