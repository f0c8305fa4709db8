"""The notebooks of notebooks/: committed without outputs, and each one runs headless, start to end, against the
reference lakehouse (250 generated people), draws at least one chart and prints no identifying value."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from lakehouse import notebook as nb
from lakehouse.config import load_settings
from tests.conftest import ReferenceRun

PROJECT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = PROJECT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
EXPECTED = {"quickstart.ipynb", "linkage_diagnostics.ipynb", "student_pathways.ipynb", "data_quality.ipynb"}
KERNEL = "lakehouse-venv"
CELL_TIMEOUT_S = 600
IDENTIFYING_ROLES = ("ssn", "ssid", "first_name", "middle_name", "last_name", "birth_date", "address_line")
"""Identity roles whose delivered values must never appear in a notebook's output."""
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")


def test_every_notebook_is_there() -> None:
    assert {p.name for p in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or an execution count; clear them before committing"


def test_flow_chart_fits_every_group_on_its_shared_axis() -> None:
    """The panels share one y axis: it must reach the tallest bar of any group, not only the first's."""
    stages = [column for column, _ in nb.FLOW_STAGES]
    frame = pd.DataFrame(
        [
            {"cohort_year": 2013, "group_dimension": "gender", "group_value": "F", **dict.fromkeys(stages, 20)},
            {"cohort_year": 2013, "group_dimension": "gender", "group_value": "M", **dict.fromkeys(stages, 90)},
            {"cohort_year": 2013, "group_dimension": "all", "group_value": "ALL", **dict.fromkeys(stages, 110)},
        ]
    )
    by_gender = nb.plot_flow(frame, 2013, "gender")
    panels = [ax for ax in by_gender.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["gender = F", "gender = M"]
    assert all(ax.get_ylim()[1] > 90 for ax in panels)
    assert by_gender.get_suptitle().endswith("by gender")
    everyone = nb.plot_flow(frame, 2013, "all")
    assert [ax.get_title() for ax in everyone.axes if ax.get_visible()] == ["all students"]
    assert everyone.get_suptitle().endswith("all students")


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec folder whose one kernel is this venv's Python, whatever kernels the machine has installed."""
    folder = tmp_path_factory.mktemp("kernels")
    spec = folder / KERNEL
    spec.mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "lakehouse (venv)", "language": "python"}), encoding="utf-8"
    )
    return folder


@pytest.fixture(scope="module")
def identifying_values(reference_run: ReferenceRun) -> set[str]:
    """Every name, SSN, student id and birth date the partners delivered in delimited files (one-word values of
    four characters or more, so that no short code is mistaken for one)."""
    values: set[str] = set()
    landing = reference_run.lakehouse.root / "landing"
    for feed in load_settings("local").feeds():
        wanted = [c.name for c in feed.columns if c.identity in IDENTIFYING_ROLES]
        if feed.format != "csv" or not wanted:
            continue
        for path in sorted((landing / feed.partner / feed.name).glob(f"*/*.{feed.file_extension}")):
            with path.open(newline="", encoding=feed.encoding) as handle:
                names = None if feed.header else [c.name for c in feed.columns]
                for row in csv.DictReader(handle, fieldnames=names, delimiter=feed.delimiter):
                    for name in wanted:
                        value = (row.get(name) or "").strip()
                        if len(value) >= 4 and " " not in value:
                            values.add(value)
    assert len(values) > 100, "the reference run's delimited deliveries gave too few identifying values to check"
    return values


def output_text(cell: nbformat.NotebookNode) -> str:
    """Every text a cell showed: streams, results (plain and HTML) and errors."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts += [str(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
        parts += output.get("traceback", [])
    return "\n".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_draws(
    path: Path, reference_run: ReferenceRun, kernel_dir: Path, identifying_values: set[str]
) -> None:
    """Run in a fresh kernel of this venv against the reference lakehouse: no cell fails (nbclient raises with the
    cell and its traceback), at least one chart is drawn, and no delivered identifying value is printed."""
    notebook = nbformat.read(path, as_version=4)
    manager = AsyncKernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    )
    spawned: dict[int, psutil.Process] = {}

    def remember_spawned(**_: object) -> None:
        """The kernel's Spark JVM and workers, which must be gone before the next notebook opens the metastore."""
        with contextlib.suppress(psutil.NoSuchProcess):
            kernel = psutil.Process(manager.provisioner.pid)
            spawned.update((p.pid, p) for p in kernel.children(recursive=True))

    client = NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
        on_cell_executed=remember_spawned,
    )
    environment = {
        **os.environ,
        "LAKEHOUSE_ENV": "local",
        "LAKEHOUSE_STORAGE_ROOT": str(reference_run.lakehouse.root),
        "PYSPARK_SUBMIT_ARGS": "--conf spark.ui.enabled=false pyspark-shell",
    }
    started = time.monotonic()
    try:
        client.execute(cleanup_kc=True, env=environment)  # shuts the kernel down, also when a cell fails
    finally:
        wait_for_exit(list(spawned.values()))
    print(f"{path.name}: executed in {time.monotonic() - started:.1f} s")

    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    charts = [o for o in outputs if "image/png" in o.get("data", {})]
    assert charts, f"{path.name} drew no chart (no image/png output)"
    for index, cell in enumerate(notebook.cells):
        leaked = set(TOKEN.findall(output_text(cell))) & identifying_values
        assert not leaked, f"{path.name} cell {index} shows delivered identifying values: {sorted(leaked)[:5]}"


def wait_for_exit(processes: list[psutil.Process], timeout_s: float = 60) -> None:
    """Wait for the processes a kernel started to exit after it (a JVM stops once its Python is gone); stop those
    still running after `timeout_s`, so that the embedded metastore is free for the next notebook."""
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    for process in alive:
        process.terminate()
    _, alive = psutil.wait_procs(alive, timeout=10)
    for process in alive:
        process.kill()
