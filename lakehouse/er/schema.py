"""Column comments of the mpi tables, carried in the schema metadata of the DataFrames written."""

from __future__ import annotations

PAIR_COMMENTS = {
    "record_id_l": "smaller record_id of the pair (silver.person_records)",
    "record_id_r": "larger record_id of the pair",
    "rule": "first blocking rule (conf/matching.yaml) that produced the pair",
    "run_id": "linkage run that produced the pair",
}
SCORED_PAIR_COMMENTS = {
    "record_id_l": "smaller record_id of the pair (silver.person_records)",
    "record_id_r": "larger record_id of the pair",
    "rule": "first blocking rule (conf/matching.yaml) that produced the pair",
    "match_weight": "prior log2-odds plus the sum of the weight_* columns",
    "match_probability": "1 / (1 + 2^-match_weight): the model's probability that the two records are one person",
    "run_id": "linkage run that scored the pair",
}
SPLIT_COMMENTS = {
    "old_cluster_id": "cluster (smallest record_id) as connected components built it",
    "record_id": "a record of that cluster",
    "cluster_id": "the record's cluster after the split (smallest record_id of its new group)",
    "reason": "why the cluster was rebuilt",
    "run_id": "linkage run that split the cluster",
}
CROSSWALK_COMMENTS = {
    "record_id": "silver.person_records record id (one row per record)",
    "person_id": "stable person id: kept from the previous run where the person's records were, else 'P' + 15 hex "
    "digits of sha2('person|' + smallest record_id of the cluster)",
    "partner": "partner that delivered the record",
    "cluster_size": "number of records of the person",
    "match_confidence": "highest match probability of a link from the record inside its person (1.0 for a single "
    "record and for the deterministic baseline)",
    "run_id": "linkage run that assigned the person id",
    "linked_at": "when the run linked the record",
}
HISTORY_COMMENTS = {
    "person_id": "person id the event is about",
    "event": "created | merged | split | retired",
    "record_id": "anchor record: the smallest record_id of the person (new anchor for created, old otherwise)",
    "reason": "why, in words, with the person ids involved",
    "run_id": "linkage run that recorded the event",
    "recorded_at": "when the event was recorded",
    "crosswalk_version": "Delta version of mpi.crosswalk the run compared with (-1: none); with person_id and "
    "event, the key that keeps an event from being recorded twice",
}
CAPPED_COMMENTS = {
    "rule": "blocking rule whose block was left out",
    "block_key_hash": "sha2-256 hex of the block key (the rule's columns joined); never the raw key",
    "block_size": "number of records in the block, above the rule's max_block_size",
    "run_id": "linkage run that capped the block",
}
METRIC_COMMENTS = {
    "model": "linkage model evaluated, e.g. deterministic-baseline",
    "n_records": "records with a known true person (the evaluated population)",
    "n_persons": "predicted persons among the evaluated records",
    "n_pairs_predicted": "record pairs in the same predicted person",
    "n_pairs_true": "record pairs of the same true person",
    "n_pairs_true_positive": "record pairs in the same predicted person and the same true person",
    "precision": "n_pairs_true_positive / n_pairs_predicted (null when no pair is predicted)",
    "recall": "n_pairs_true_positive / n_pairs_true (null when no true pair exists)",
    "f1": "harmonic mean of precision and recall",
    "n_true_persons": "true persons among the evaluated records",
    "n_true_persons_split": "true persons whose records are under more than one predicted person (missed links)",
    "n_persons_merged": "predicted persons holding records of more than one true person (false links)",
}
