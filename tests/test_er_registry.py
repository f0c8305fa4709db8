"""The MLflow registry of linkage models: each lakehouse has its own store, versions and alias (no Spark)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from lakehouse.config import ConfigError, Settings, load_settings
from lakehouse.er.model import ComparisonModel, FellegiSunterModel
from lakehouse.er.registry import ModelRegistry, model_metrics, settings_params, tracking_uri


def _settings(root: Path) -> Settings:
    base = load_settings("local")
    return dataclasses.replace(base, storage=dataclasses.replace(base.storage, root=str(root)))


def _model(prior: float) -> FellegiSunterModel:
    comparison = ComparisonModel(
        name="first_name",
        levels=("exact", "close", "else"),
        m=(0.9, 0.08, 0.02),
        u=(0.01, 0.04, 0.95),
        tf_columns=("tf_first_name", None, None),
    )
    return FellegiSunterModel(prior=prior, comparisons=(comparison,), max_tf_adjustment=8.0, training={})


def test_two_lakehouses_keep_their_own_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first, second = _settings(tmp_path / "a"), _settings(tmp_path / "b")
    registry = ModelRegistry(first)
    assert registry.resolve() is None, "nothing registered yet: the first run trains"
    run_id = registry.start_run("run-1", first.matching, trained=True)  # type: ignore[arg-type]
    registry.log_model(run_id, _model(0.001))
    assert registry.register(run_id, "run-1") == "1"
    run_id = registry.start_run("run-2", first.matching, trained=True)  # type: ignore[arg-type]
    registry.log_model(run_id, _model(0.002))
    assert registry.register(run_id, "run-2") == "2"

    current = registry.resolve()
    assert current is not None and (current.version, current.model) == ("2", _model(0.002))
    pinned = registry.resolve("c2c-person-linkage/1")
    assert pinned is not None and pinned.model == _model(0.001)
    assert "MLFLOW_TRACKING_URI" not in os.environ, "the process-wide tracking URI is left alone"
    assert ModelRegistry(second).resolve() is None, "another storage root has a registry of its own"
    assert tracking_uri(first) != tracking_uri(second)
    with pytest.raises(ValueError, match="no registered linkage model 'c2c-person-linkage/7'"):
        registry.resolve("c2c-person-linkage/7")


def test_settings_and_model_become_flat_mlflow_values() -> None:
    matching = load_settings("local").matching
    assert matching is not None
    params = settings_params(matching)
    assert params["threshold"] == str(matching.model.threshold)
    assert all(isinstance(v, str) and len(v) < 500 for v in params.values())
    assert model_metrics(_model(0.001)) == {
        "prior": 0.001,
        "m.first_name.exact": 0.9,
        "u.first_name.exact": 0.01,
        "m.first_name.close": 0.08,
        "u.first_name.close": 0.04,
        "m.first_name.else": 0.02,
        "u.first_name.else": 0.95,
    }


def test_remote_storage_needs_a_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    base = load_settings("local")
    remote = dataclasses.replace(base, storage=dataclasses.replace(base.storage, root="s3a://bucket/lakehouse"))
    with pytest.raises(ConfigError, match="tracking_uri"):
        tracking_uri(remote)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(remote) == "http://127.0.0.1:5000"
