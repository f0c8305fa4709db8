"""The scale benchmark's arithmetic (bench/scale/run_bench.py): event-log figures, medians, growth exponents."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import load_scale_bench


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_scale_bench()


def task_end(executor: str, written: int, read: tuple[int, int], spilled: int, heap: int) -> dict[str, Any]:
    local_read, remote_read = read
    return {
        "Event": "SparkListenerTaskEnd",
        "Task Info": {"Executor ID": executor},
        "Task Executor Metrics": {"JVMHeapMemory": heap},
        "Task Metrics": {
            "Shuffle Write Metrics": {"Shuffle Bytes Written": written},
            "Shuffle Read Metrics": {"Local Bytes Read": local_read, "Remote Bytes Read": remote_read},
            "Disk Bytes Spilled": spilled,
            "Memory Bytes Spilled": 2 * spilled,
        },
    }


def test_event_log_figures_sum_tasks_and_keep_heap_peaks(bench: ModuleType, tmp_path: Path) -> None:
    events = [
        {"Event": "SparkListenerApplicationStart"},
        task_end("driver", 100, (10, 0), 0, 500),
        task_end("driver", 50, (5, 0), 7, 300),
        task_end("1", 1, (0, 4), 0, 900),
        {
            "Event": "SparkListenerStageExecutorMetrics",
            "Executor ID": "driver",
            "Executor Metrics": {"JVMHeapMemory": 800},
        },
    ]
    (tmp_path / "eventlog_v2_app-1").mkdir()  # Spark 4's layout: a folder per application, and marker files
    (tmp_path / "eventlog_v2_app-1" / "events_1_app-1").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    (tmp_path / "eventlog_v2_app-1" / "appstatus_app-1").write_text("")
    figures = bench.event_log_figures(tmp_path)
    assert figures["tasks"] == 3
    assert figures["shuffle_write_bytes"] == 151
    assert figures["shuffle_read_bytes"] == 19
    assert (figures["spill_disk_bytes"], figures["spill_memory_bytes"]) == (7, 14)
    assert figures["peak_jvm_heap_bytes"] == {"driver": 800, "1": 900}


def run(people: int, seconds: dict[str, float]) -> dict[str, Any]:
    stages = {
        s: {
            "stage_s": seconds[s],
            "peak_rss_bytes": 2**30,
            "peak_jvm_heap_bytes": {"driver": 2**29},
            "shuffle_write_bytes": 0,
            "spill_disk_bytes": 0,
        }
        for s in seconds
    }
    stages["link"]["pairs_per_record"] = 3.5
    return {"people": people, "delivered_rows": 50 * people, "pipeline_s": sum(seconds.values()), "stages": stages}


def test_medians_growth_and_render(bench: ModuleType) -> None:
    base = {"bronze": 10.0, "silver": 10.0, "link": 10.0, "gold": 10.0, "public": 10.0}
    runs = [
        run(1000, base),
        run(1000, {**base, "link": 30.0}),
        run(1000, {**base, "link": 20.0}),
        run(10000, {s: 10 * v for s, v in base.items()}),  # ten times the people, ten times the time
        run(100000, {s: 1000 * v for s, v in base.items()}),  # ten times again, a hundred times the time
    ]
    summary = bench.medians(runs)
    assert summary[1000]["runs"] == 3
    assert summary[1000]["stage_s"]["link"] == 20.0
    assert summary[1000]["pipeline_s"] == 60.0
    assert summary[1000]["pipeline_range_s"] == [50.0, 70.0]
    assert summary[1000]["median_run"]["pipeline_s"] == 60.0
    exponents = bench.growth(summary)
    assert exponents[0][:2] == (1000, 10000) and exponents[0][2] == pytest.approx(0.92, abs=0.01)
    assert exponents[1] == (10000, 100000, 2.0)
    text = bench.render(
        {"summary": summary, "machine": {"cores": 2, "memory_mb": 24576, "platform": "x"}, "finished_at": "t"}
    )
    assert "| 1,000 | 50,000 | 3 | 10 | 10 | 20 | 10 | 10 | 60 (50-70) |" in text
    assert "- 10,000 to 100,000 people: pipeline 2.0" in text


def fake_stage_runs(bench: ModuleType, monkeypatch: pytest.MonkeyPatch, log: list[str]) -> None:
    """Replace the measured processes with instant ones that log what a real generate and stage log."""

    def run_measured(command: list[str], environment: dict[str, str], log_file: Path) -> tuple[float, int, str]:
        step = command[command.index("--stages") + 1] if "--stages" in command else "generate"
        log.append(step)
        if step == "generate":
            text = "generated cde/k12_enrollment: 700 rows in 1 files\ngenerated edd/ui_wages: 300 rows in 1 files\n"
        else:
            figures = {"records": 40, "candidate_pairs": 100, "persons": 12} if step == "link" else {}
            text = f"1 INFO lakehouse.pipeline: stage {step}: done in 2.0 s, 1,000 rows read and 10 written: "
            text += json.dumps(figures) + "\n"
        log_file.write_text(text, encoding="utf-8")
        return 3.0, 2**20, text

    monkeypatch.setattr(bench, "run_measured", run_measured)


def test_a_run_stopped_after_a_stage_resumes_at_the_next(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []
    fake_stage_runs(bench, monkeypatch, steps)
    assert bench.run_size(100, 7, "local", tmp_path, 1, through="silver") is None
    assert steps == ["generate", "bronze", "silver"]
    root = tmp_path / "people-100-seed-7"
    saved = json.loads((root / "bench-run.json").read_text())
    assert list(saved["stages"]) == ["bronze", "silver"] and "running" not in saved
    assert not (root / "bench-data.json").exists()  # make bench-bi must not take a half-built lakehouse

    run = bench.run_size(100, 7, "local", tmp_path, 1, resume=True)
    assert steps == ["generate", "bronze", "silver", "link", "gold", "public"]
    assert run["delivered_rows"] == 1000 and run["pipeline_s"] == 10.0
    assert list(run["stages"]) == list(bench.STAGES)
    assert run["stages"]["link"]["pairs_per_record"] == 2.5
    assert set(run["code"]) == {"generate", *bench.STAGES}
    assert json.loads((root / "bench-data.json").read_text())["seconds"]["public"] == 2.0

    again = bench.run_size(100, 7, "local", tmp_path, 1, resume=True)  # finished: reused, nothing runs
    assert len(steps) == 6 and again == run

    bench.run_size(100, 7, "local", tmp_path, 2, resume=True)  # repeat 1 is finished: repeat 2 starts afresh
    assert steps[6:] == ["generate", *bench.STAGES]
    bench.run_size(100, 7, "local", tmp_path, 2)  # without --resume: a fresh lakehouse, generate again
    assert steps[12:] == ["generate", *bench.STAGES]


def test_resume_refuses_an_interrupted_stage_or_another_size(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []
    fake_stage_runs(bench, monkeypatch, steps)
    bench.run_size(100, 7, "local", tmp_path, 1, through="bronze")
    with pytest.raises(RuntimeError, match="not"):
        bench.run_size(100, 7, "large", tmp_path, 1, resume=True)
    with pytest.raises(RuntimeError, match="unfinished repeat 1, not repeat 2"):
        bench.run_size(100, 7, "local", tmp_path, 2, resume=True)
    state = tmp_path / "people-100-seed-7" / "bench-run.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "running": "silver"}))
    with pytest.raises(RuntimeError, match="stage silver was interrupted"):
        bench.run_size(100, 7, "local", tmp_path, 1, resume=True)
    assert steps == ["generate", "bronze"]


def test_merged_results_keep_every_run_and_say_where_they_come_from(bench: ModuleType) -> None:
    base = {"bronze": 10.0, "silver": 10.0, "link": 10.0, "gold": 10.0, "public": 10.0}
    machine = {"cores": 2, "memory_mb": 24576, "platform": "x"}
    small = {"runs": [run(1000, base), run(1000, base)], "machine": machine, "finished_at": "monday"}
    large = {"runs": [run(10000, {s: 10 * v for s, v in base.items()})], "machine": machine, "finished_at": "friday"}
    result = bench.merged([small, large])
    assert [r["people"] for r in result["runs"]] == [1000, 1000, 10000]
    assert result["summary"][1000]["runs"] == 2 and result["summary"][10000]["pipeline_s"] == 500.0
    text = bench.render(result)
    assert "Merged from the results finished at monday, friday" in text
    assert "- 1,000 to 10,000 people: pipeline 1.0" in text
