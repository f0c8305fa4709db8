"""Incremental linking equals a full re-run; runs are tracked in MLflow and score with the registered model.

One population of synthetic people (tests/synthetic_people.py) in two states: the first lacks a later delivery
(15% of the records, some of them new people, some more records of known people) and holds a few records that
the second no longer has; in the second, one more record sharing an SSN with 40 others pushes that block over
same_ssn's max_block_size, so the blocks' capped status changes too.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Settings
from lakehouse.er import link
from lakehouse.er.link_files import load_mapping, standardized_records
from lakehouse.er.registry import ModelRegistry, tracking_uri
from lakehouse.session import create_databases
from lakehouse.tables import write_table
from tests.conftest import isolated
from tests.synthetic_people import MAPPING, people, record

SHARED_SSN = "219551234"


def _rows() -> tuple[list[dict[str, str]], set[str], set[str]]:
    """All records, the ids the first state lacks (the later delivery) and the ids only the first state has."""
    rng = random.Random(5)
    population = people(560, seed=23)
    rows = []
    for k, person in enumerate(population[:520]):
        copies = 1 + (rng.random() < 0.4) * rng.choice([1, 2])
        rows += [record(person, f"R{k}-{c}", rng, noisy=c > 0) for c in range(copies)]
    for k, person in enumerate(population[520:]):  # people only the later delivery brings
        rows.append(record(person, f"N{k}", rng, noisy=False))
    for k in range(41):  # 41 records of different people sharing one SSN: 40 fit in a block, 41 do not
        # one birth date: a number shared by many birth dates would be a placeholder, nulled before blocking
        shared = dict(population[k % 520], ssn=SHARED_SSN, person=f"S{k}", first=f"SHARER{k}", birth="19990101")
        rows.append(record(shared, f"S{k}", rng, noisy=False))
    ids = [r["rec_id"] for r in rows]
    later = {i for i in ids if i.startswith("N") or i == "S40"}
    later |= set(rng.sample([i for i in ids if i.startswith("R") and not i.endswith("-0")], 60))
    later |= set(rng.sample([i for i in ids if i.startswith("R") and i.endswith("-0")], 40))
    gone = set(rng.sample(sorted(i for i in set(ids) - later if not i.startswith("S")), 12))
    return rows, later, gone


@pytest.fixture(scope="module")
def states(spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, DataFrame]:
    """Person records of the first and second state, standardized as silver would (tokens under the test key)."""
    rows, later, gone = _rows()
    mapping_path = tmp_path_factory.mktemp("incremental") / "mapping.yaml"
    mapping_path.write_text(MAPPING, encoding="utf-8")
    columns = [c for c in rows[0] if c != "true_person"]
    raw = spark.createDataFrame([tuple(r[c] for c in columns) for r in rows], ", ".join(f"{c} string" for c in columns))
    records = standardized_records(
        raw, load_mapping(mapping_path), "people", mapping_path, tokenize_key=b"test-only-key"
    ).localCheckpoint(eager=True)
    first = records.where(~F.col("source_record_id").isin(*later))
    second = records.where(~F.col("source_record_id").isin(*gone))
    return {"first": first.localCheckpoint(eager=True), "second": second.localCheckpoint(eager=True)}


@pytest.fixture(scope="module")
def inc_settings(spark: SparkSession, settings: Settings) -> Iterator[Settings]:
    s = isolated(settings, "incremental")
    assert s.matching is not None
    s = dataclasses.replace(s, matching=dataclasses.replace(s.matching, engine="probabilistic", evaluate=False))
    create_databases(spark, s)
    yield s


def _load(spark: SparkSession, settings: Settings, records: DataFrame) -> None:
    write_table(records.drop("source_record_id"), settings.table("silver", "person_records"))


def _persons(spark: SparkSession, settings: Settings) -> dict[str, frozenset[str]]:
    rows = (
        spark.read.table(settings.table("mpi", "crosswalk"))
        .groupBy("person_id")
        .agg(F.collect_list("record_id").alias("records"))
    )
    return {r["person_id"]: frozenset(r["records"]) for r in rows.collect()}


def _scored(spark: SparkSession, settings: Settings) -> dict[tuple[str, str], float]:
    rows = spark.read.table(settings.table("mpi", "scored_pairs")).collect()
    return {(r["record_id_l"], r["record_id_r"]): float(r["match_probability"]) for r in rows}


@pytest.fixture(scope="module")
def runs(spark: SparkSession, inc_settings: Settings, states: dict[str, DataFrame]) -> dict[str, Any]:
    """First state linked in full (trains, registers v1); second state incrementally; then in full again."""
    s = inc_settings
    assert s.matching is not None
    _load(spark, s, states["first"])
    first = link(spark, s, "run-1")
    persons_first = _persons(spark, s)
    _load(spark, s, states["second"])
    incremental = link(spark, s, "run-2")
    persons_incremental, scored_incremental = _persons(spark, s), _scored(spark, s)
    full_settings = dataclasses.replace(s, matching=dataclasses.replace(s.matching, incremental=False))
    full = link(spark, full_settings, "run-3")
    return {
        "first": first,
        "incremental": incremental,
        "full": full,
        "persons_first": persons_first,
        "persons_incremental": persons_incremental,
        "persons_full": _persons(spark, s),
        "scored_incremental": scored_incremental,
        "scored_full": _scored(spark, s),
    }


def test_second_run_is_incremental_and_recomputes_only_affected_records(runs: dict[str, Any]) -> None:
    first, incremental, full = runs["first"], runs["incremental"], runs["full"]
    assert (first.mode, incremental.mode, full.mode) == ("full", "incremental", "full")
    assert incremental.n_affected_records is not None
    assert 0 < incremental.n_affected_records < incremental.n_records / 2
    assert incremental.n_candidate_pairs < full.n_candidate_pairs
    assert incremental.n_capped_blocks == full.n_capped_blocks >= 1, "the shared SSN's block is capped now"
    assert first.n_capped_blocks == 0


def test_incremental_equals_full(runs: dict[str, Any]) -> None:
    assert set(runs["persons_incremental"].values()) == set(runs["persons_full"].values()), "same clusters"
    assert runs["persons_incremental"] == runs["persons_full"], "same person ids"
    inc, full = runs["scored_incremental"], runs["scored_full"]
    assert set(inc) == set(full), "same scored pairs"
    assert all(abs(inc[k] - full[k]) < 1e-6 for k in full), "same probabilities"


def test_unchanged_people_keep_their_ids(runs: dict[str, Any]) -> None:
    before, after = runs["persons_first"], runs["persons_incremental"]
    unchanged = {pid: members for pid, members in before.items() if after.get(pid) == members}
    assert len(unchanged) > 0.8 * len(before)
    by_members = {members: pid for pid, members in after.items()}
    for pid, members in before.items():
        if members in by_members:
            assert by_members[members] == pid, "a person whose records did not change keeps the id"


def test_runs_are_tracked_and_the_registered_model_is_used(
    spark: SparkSession, inc_settings: Settings, runs: dict[str, Any]
) -> None:
    first, incremental = runs["first"], runs["incremental"]
    assert first.model_version == incremental.model_version == "1"
    models = spark.read.table(inc_settings.table("mpi", "linkage_models")).orderBy("linked_at").collect()
    assert [(m["trained"], m["mode"], m["model_version"]) for m in models] == [
        (True, "full", "1"),
        (False, "incremental", "1"),
        (False, "full", "1"),
    ]
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(inc_settings))
    run = client.get_run(first.mlflow_run_id)
    assert run.data.params["threshold"] == str(inc_settings.matching.model.threshold)  # type: ignore[union-attr]
    assert "blocking.same_ssn" in run.data.params
    assert any(k.startswith("m.first_name.") for k in run.data.metrics)
    assert run.data.metrics["n_records"] == first.n_records
    assert run.data.metrics["pairs.same_ssn"] > 0
    artifacts = {a.path for a in client.list_artifacts(first.mlflow_run_id, "charts")}
    assert artifacts == {"charts/m_u_probabilities.png", "charts/level_weights.png"}
    assert [a.path for a in client.list_artifacts(first.mlflow_run_id, "model")] == ["model/model.json"]
    assert client.get_run(incremental.mlflow_run_id).data.tags["trained"] == "false"


def test_retrain_registers_a_new_version_and_moves_the_alias(
    spark: SparkSession, inc_settings: Settings, runs: dict[str, Any]
) -> None:
    assert inc_settings.matching is not None
    registry = dataclasses.replace(inc_settings.matching.registry, retrain=True)
    retrain = dataclasses.replace(inc_settings, matching=dataclasses.replace(inc_settings.matching, registry=registry))
    result = link(spark, retrain, "run-4")
    assert (result.model_version, result.mode) == ("2", "full")
    current = ModelRegistry(inc_settings).resolve()
    assert current is not None and current.version == "2"
    assert Path(tracking_uri(inc_settings).removeprefix("sqlite:///")).is_file()
