"""`lakehouse link`: an outside file deduplicated, two files linked, mapping errors, a registered model reused."""

from __future__ import annotations

import random
from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from lakehouse.cli import main
from lakehouse.config import Settings
from lakehouse.er.link_files import LinkFilesResult, LinkInputError, link_files, load_mapping
from lakehouse.er.registry import ModelRegistry
from tests.conftest import isolated
from tests.synthetic_people import MAPPING, people, record, write_csv


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """people.csv: 500 people, a third of them two or three times (with a typo, a nickname or no SSN);
    other.parquet: 300 of the same people once more plus 150 people of its own."""
    folder = tmp_path_factory.mktemp("link_files")
    rng = random.Random(7)
    population = people(650, seed=11)
    rows = []
    for k, person in enumerate(population[:500]):
        copies = 1 + (rng.random() < 0.33) * rng.choice([1, 2])
        rows += [record(person, f"A{k}-{c}", rng, noisy=c > 0) for c in range(copies)]
    rng.shuffle(rows)
    write_csv(folder / "people.csv", rows)
    other = [record(p, f"B{k}", rng, noisy=True) for k, p in enumerate(population[200:650])]
    pd.DataFrame(other).to_parquet(folder / "other.parquet", index=False)
    (folder / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    return {"csv": folder / "people.csv", "parquet": folder / "other.parquet", "mapping": folder / "mapping.yaml"}


@pytest.fixture(scope="module")
def link_settings(settings: Settings) -> Settings:
    return isolated(settings, "link_files")


def _truth(paths: list[Path]) -> dict[tuple[str, str], str]:
    truth = {}
    for path in paths:
        frame = pd.read_csv(path, dtype=str) if path.suffix == ".csv" else pd.read_parquet(path)
        truth.update({(path.stem, r): p for r, p in zip(frame["rec_id"], frame["true_person"], strict=True)})
    return truth


def _pairwise(clusters: pd.DataFrame, truth: dict[tuple[str, str], str], *, across: bool) -> tuple[float, float]:
    """Pairwise precision and recall of the clusters (pairs across sources only when `across`)."""
    keys = list(zip(clusters["source"], clusters["record_id"], strict=True))
    predicted = {
        frozenset((a, b))
        for _, group in clusters.assign(key=keys).groupby("cluster_id")
        for a, b in combinations(group["key"], 2)
        if not across or a[0] != b[0]
    }
    by_person: dict[str, list[tuple[str, str]]] = {}
    for key in keys:
        by_person.setdefault(truth[key], []).append(key)
    true = {
        frozenset((a, b))
        for members in by_person.values()
        for a, b in combinations(members, 2)
        if not across or a[0] != b[0]
    }
    hits = len(predicted & true)
    return hits / max(len(predicted), 1), hits / max(len(true), 1)


@pytest.fixture(scope="module")
def deduplicated(
    spark: SparkSession, link_settings: Settings, files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> LinkFilesResult:
    return link_files(spark, link_settings, [files["csv"]], files["mapping"], tmp_path_factory.mktemp("deduplicated"))


def test_deduplicates_one_csv(deduplicated: LinkFilesResult, files: dict[str, Path]):
    result = deduplicated
    clusters = pd.read_parquet(result.clusters_path)
    pairs = pd.read_parquet(result.pairs_path)
    truth = _truth([files["csv"]])
    assert list(clusters.columns) == ["source", "record_id", "cluster_id"]
    assert sorted(clusters["record_id"]) == sorted(r for _, r in truth), "every input record exactly once"
    assert set(clusters["source"]) == {"people"}
    assert list(pairs.columns) == [
        "source_l",
        "record_id_l",
        "source_r",
        "record_id_r",
        "match_weight",
        "match_probability",
    ]
    assert (pairs["match_probability"] >= result.threshold).all()
    precision, recall = _pairwise(clusters, truth, across=False)
    assert precision >= 0.97, precision
    assert recall >= 0.85, recall
    assert result.n_clusters < result.n_records
    assert result.trained


def test_links_two_files_across_only(
    spark: SparkSession, link_settings: Settings, files: dict[str, Path], tmp_path: Path
):
    result = link_files(
        spark,
        link_settings,
        [files["csv"], files["parquet"]],
        files["mapping"],
        tmp_path,
        pairs_min_probability=0.5,
    )
    pairs = pd.read_parquet(result.pairs_path)
    clusters = pd.read_parquet(result.clusters_path)
    assert len(pairs) > 0
    assert (pairs["source_l"] != pairs["source_r"]).all(), "two inputs: pairs across the inputs only"
    assert pairs["match_probability"].min() >= 0.5
    assert set(clusters["source"]) == {"people", "other"}
    precision, recall = _pairwise(clusters, _truth([files["csv"], files["parquet"]]), across=True)
    assert precision >= 0.97, precision
    assert recall >= 0.85, recall


def test_registered_model_scores_like_the_trained_one(
    spark: SparkSession, link_settings: Settings, files: dict[str, Path], deduplicated: LinkFilesResult, tmp_path: Path
):
    trained = deduplicated
    registry = ModelRegistry(link_settings)
    run_id = registry.start_run("test-link-files", link_settings.matching, trained=True)  # type: ignore[arg-type]
    registry.log_model(run_id, trained.model)
    version = registry.register(run_id, "test-link-files")
    by_version = registry.resolve(f"{link_settings.matching.registry.model_name}/{version}")  # type: ignore[union-attr]
    by_alias = registry.resolve()
    assert by_version is not None and by_alias is not None
    assert by_version.model == trained.model and by_alias.version == version
    reused = link_files(
        spark, link_settings, [files["csv"]], files["mapping"], tmp_path / "reused", model=by_version.model
    )
    assert not reused.trained
    same = pd.read_parquet(trained.clusters_path).sort_values(["source", "record_id"]).reset_index(drop=True)
    again = pd.read_parquet(reused.clusters_path).sort_values(["source", "record_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(same, again)
    with pytest.raises(ValueError, match="no registered linkage model"):
        registry.resolve("no-such-model/1")


def test_cli_link_writes_both_files(
    monkeypatch: pytest.MonkeyPatch, link_settings: Settings, files: dict[str, Path], tmp_path: Path, capsys
):
    monkeypatch.setenv("LAKEHOUSE_STORAGE_ROOT", link_settings.storage.root)
    code = main(
        ["link", "--input", str(files["csv"]), "--mapping", str(files["mapping"]), "--out", str(tmp_path / "out")]
    )
    assert code == 0
    assert "clusters" in capsys.readouterr().out
    assert (tmp_path / "out" / "clusters.parquet").exists() and (tmp_path / "out" / "pairs.parquet").exists()


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("first_name: given_name\n", "record_id is required"),
        ("record_id: rec_id\nbirthday: birth\n", "unknown attribute"),
        ("record_id: rec_id\ndob: {column: birth, pattern: x}\n", "dob must be a column name"),
        ("record_id: rec_id\nfirst_name: [a, b]\n", "first_name must name a column"),
        ("- record_id\n", "must be a YAML mapping"),
    ],
)
def test_malformed_mapping_is_named(tmp_path: Path, mapping: str, message: str):
    path = tmp_path / "mapping.yaml"
    path.write_text(mapping, encoding="utf-8")
    with pytest.raises(LinkInputError, match=message) as error:
        load_mapping(path)
    assert str(path) in str(error.value)


def test_bad_inputs_are_named(spark: SparkSession, link_settings: Settings, files: dict[str, Path], tmp_path: Path):
    wrong_column = tmp_path / "wrong.yaml"
    wrong_column.write_text("record_id: rec_id\nfirst_name: forename\n", encoding="utf-8")
    with pytest.raises(LinkInputError, match=r"people.csv: column\(s\) forename named in .*wrong.yaml not found"):
        link_files(spark, link_settings, [files["csv"]], wrong_column, tmp_path / "a")
    duplicated = tmp_path / "dup.csv"
    duplicated.write_text("rec_id,given_name\n1,ANA\n2,JOSE\n1,MARIA\n", encoding="utf-8")
    simple = tmp_path / "simple.yaml"
    simple.write_text("record_id: rec_id\nfirst_name: given_name\n", encoding="utf-8")
    with pytest.raises(LinkInputError, match=r"dup.csv: column rec_id \(record_id\) is not unique.*'1'"):
        link_files(spark, link_settings, [duplicated], simple, tmp_path / "b")
    with pytest.raises(LinkInputError, match="same name stem"):
        link_files(spark, link_settings, [files["csv"], files["csv"]], files["mapping"], tmp_path / "c")
    with pytest.raises(LinkInputError, match="--threshold must be a probability"):
        link_files(spark, link_settings, [files["csv"]], files["mapping"], tmp_path / "d", threshold=1.5)
    with pytest.raises(LinkInputError, match="unsupported file type"):
        link_files(spark, link_settings, [files["mapping"]], files["mapping"], tmp_path / "e")
