"""Linkage models in MLflow: every probabilistic link run is tracked, every trained model is registered.

A link run is one MLflow run in the experiment of `matching.registry` (tagged with the pipeline run id): the
settings as parameters; the blocking statistics, m and u of every comparison level, the prior and the run's
figures as metrics; precision, recall and F1 when ground truth exists (`log_evaluation`). A run that trains
also logs the model (model/model.json) and two charts (m and u per level; the weight of each level), and
registers the model as a new version of `registry.model_name`, moving `registry.alias` to it.

Production runs score with the version the alias names; they train only when no version has the alias yet
or when told to (`registry.retrain`, `lakehouse run --retrain`). `lakehouse link --model NAME[/VERSION]`
scores an outside file with a registered version (VERSION a number or an alias).

Tracking: `registry.tracking_uri`, else $MLFLOW_TRACKING_URI, else a SQLite file and an artifact folder in
storage.mlflow (local storage roots only; a shared deployment points tracking_uri at an MLflow server).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse.config import ConfigError, MatchingSettings, Settings
from lakehouse.er.model import FellegiSunterModel

logger = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
MODEL_FILE = "model.json"


@dataclass(frozen=True)
class RegisteredModel:
    model: FellegiSunterModel
    name: str
    version: str
    mlflow_run_id: str | None


def tracking_uri(settings: Settings) -> str:
    """The MLflow tracking (and registry) URI of these settings (module docstring)."""
    matching = settings.matching
    configured = matching.registry.tracking_uri if matching is not None else ""
    if configured:
        return configured
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env:
        return from_env
    folder = settings.storage.path("mlflow")
    if "://" in folder:
        raise ConfigError(
            f"storage.mlflow is {folder}: a SQLite tracking store needs a local folder; set "
            "matching.registry.tracking_uri (or MLFLOW_TRACKING_URI) to the MLflow server"
        )
    Path(folder).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}"


class ModelRegistry:
    """The MLflow client of one lakehouse: its experiment, registered model and alias."""

    def __init__(self, settings: Settings) -> None:
        from mlflow import MlflowClient

        if settings.matching is None:
            raise ConfigError("conf/matching.yaml was not loaded")
        self.registry = settings.matching.registry
        self.uri = tracking_uri(settings)
        # Only this client is pointed at the store: mlflow.set_tracking_uri would also set MLFLOW_TRACKING_URI
        # in the environment, and every later registry of the process (another lakehouse) would follow it.
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        experiment = self.client.get_experiment_by_name(self.registry.experiment)
        if experiment is None:
            folder = settings.storage.path("mlflow")
            location = None if "://" in folder else Path(folder).resolve().joinpath("artifacts").as_uri()
            self.experiment_id = self.client.create_experiment(self.registry.experiment, artifact_location=location)
        else:
            self.experiment_id = experiment.experiment_id

    # ---------------------------------------------------------------------------------------------- reading

    def resolve(self, reference: str | None = None) -> RegisteredModel | None:
        """The registered model named by `reference` ("NAME", "NAME/3", "NAME/champion"; default: the configured
        name and alias), or None when the default name or alias has no version yet.

        An explicit reference that names nothing raises ValueError.
        """
        from mlflow.exceptions import MlflowException

        name, _, selector = (reference or self.registry.model_name).partition("/")
        explicit = reference is not None
        try:
            if selector.isdigit():
                version = self.client.get_model_version(name, selector)
            elif selector:
                version = self.client.get_model_version_by_alias(name, selector)
            else:
                try:
                    version = self.client.get_model_version_by_alias(name, self.registry.alias)
                except MlflowException:
                    if not explicit:
                        raise
                    versions = self.client.search_model_versions(f"name = '{name}'")
                    if not versions:
                        raise
                    version = max(versions, key=lambda v: int(v.version))
        except MlflowException as exc:
            if explicit:
                raise ValueError(f"no registered linkage model {reference!r} in {self.uri}") from exc
            return None
        return RegisteredModel(
            model=self._download(str(version.source)),
            name=name,
            version=str(version.version),
            mlflow_run_id=version.run_id,
        )

    def _download(self, source: str) -> FellegiSunterModel:
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=self.uri))
            path = local / MODEL_FILE if local.is_dir() else local
            return FellegiSunterModel.from_json(path.read_text(encoding="utf-8"))

    # ---------------------------------------------------------------------------------------------- writing

    def start_run(self, pipeline_run_id: str, matching: MatchingSettings, *, trained: bool) -> str:
        """A new MLflow run for one link run, with the settings as parameters; returns its id."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"link-{pipeline_run_id}",
            tags={"pipeline_run_id": pipeline_run_id, "engine": matching.engine, "trained": str(trained).lower()},
        )
        run_id: str = run.info.run_id
        for key, value in settings_params(matching).items():
            self.client.log_param(run_id, key, value)
        return run_id

    def log_figures(self, run_id: str, figures: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        stamp = _now_ms()
        metrics = [Metric(key=k, value=float(v), timestamp=stamp, step=0) for k, v in figures.items()]
        for start in range(0, len(metrics), 500):
            self.client.log_batch(run_id, metrics=metrics[start : start + 500])

    def log_model(self, run_id: str, model: FellegiSunterModel) -> None:
        """The model's m and u as metrics, model/model.json and the charts as artifacts."""
        self.log_figures(run_id, model_metrics(model))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / MODEL_ARTIFACT
            folder.mkdir()
            (folder / MODEL_FILE).write_text(model.to_json(), encoding="utf-8")
            self.client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT)
        import matplotlib.pyplot as plt

        for name, figure in model_charts(model).items():
            self.client.log_figure(run_id, figure, f"charts/{name}.png")
            plt.close(figure)

    def register(self, run_id: str, pipeline_run_id: str) -> str:
        """Register the run's model as a new version and move the alias to it; returns the version."""
        from mlflow.exceptions import MlflowException

        name = self.registry.model_name
        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(
                name, description="Fellegi-Sunter person linkage model of the lakehouse (m, u, prior; JSON)"
            )
        run = self.client.get_run(run_id)
        version = self.client.create_model_version(
            name,
            source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT}",
            run_id=run_id,
            tags={"pipeline_run_id": pipeline_run_id},
        )
        self.client.set_registered_model_alias(name, self.registry.alias, version.version)
        logger.info("registered %s version %s (alias %s)", name, version.version, self.registry.alias)
        return str(version.version)

    def finish(self, run_id: str, *, model_name: str, model_version: str) -> None:
        self.client.set_tag(run_id, "model", f"{model_name}/{model_version}")
        self.client.set_terminated(run_id)


def settings_params(matching: MatchingSettings) -> dict[str, str]:
    """The linkage settings as flat MLflow parameters (strings)."""
    model = matching.model
    params: dict[str, Any] = {
        "engine": matching.engine,
        "threshold": model.threshold,
        "strong_threshold": model.strong_threshold,
        "min_stored_probability": model.min_stored_probability,
        "u_sample_pairs": model.u_sample_pairs,
        "em_max_iterations": model.em_max_iterations,
        "em_tolerance": model.em_tolerance,
        "training_rules": ",".join(model.training_rules),
        "jaro_winkler_high": model.jaro_winkler_high,
        "jaro_winkler_low": model.jaro_winkler_low,
        "max_tf_adjustment": model.max_tf_adjustment,
        "seed": model.seed,
        "max_cluster_size": matching.clustering.max_cluster_size,
    }
    for rule in matching.blocking:
        params[f"blocking.{rule.name}"] = f"{'+'.join(rule.columns)} (max block {rule.max_block_size})"
    return {k: str(v) for k, v in params.items()}


def model_metrics(model: FellegiSunterModel) -> dict[str, float]:
    """prior, and m.<comparison>.<level> and u.<comparison>.<level> for every level."""
    figures = {"prior": model.prior}
    for comparison in model.comparisons:
        for level, m, u in zip(comparison.levels, comparison.m, comparison.u, strict=True):
            figures[f"m.{comparison.name}.{level}"] = m
            figures[f"u.{comparison.name}.{level}"] = u
    return figures


def model_charts(model: FellegiSunterModel) -> dict[str, Any]:
    """Two matplotlib figures: m and u per level, and each level's weight (log2 m/u)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [f"{c.name}: {level}" for c in model.comparisons for level in c.levels]
    m = np.array([x for c in model.comparisons for x in c.m])
    u = np.array([x for c in model.comparisons for x in c.u])
    positions = np.arange(len(labels))
    height = 0.25 * len(labels) + 1.5

    probabilities, ax = plt.subplots(figsize=(9, height))
    ax.barh(positions - 0.2, m, height=0.4, label="m (same person)")
    ax.barh(positions + 0.2, u, height=0.4, label="u (different people)")
    ax.set_xscale("log")
    ax.set_yticks(positions, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("probability of the level (log scale)")
    ax.set_title("m and u probabilities per comparison level")
    ax.legend(loc="lower right")
    probabilities.tight_layout()

    weights, ax = plt.subplots(figsize=(9, height))
    bits = np.log2(np.maximum(m, 1e-12) / np.maximum(u, 1e-12))
    ax.barh(positions, bits, color=["tab:green" if b > 0 else "tab:red" for b in bits])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(positions, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("match weight of the level: log2(m / u), bits")
    ax.set_title(f"Level weights (prior {model.prior:.3g})")
    weights.tight_layout()
    return {"m_u_probabilities": probabilities, "level_weights": weights}


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
