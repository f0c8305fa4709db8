"""The command line: help texts, exit codes, and the demo's refusal to mix two samples (no Spark needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lakehouse.cli import EXIT_USAGE, build_parser, main, sample_delivery_id, with_link_options
from lakehouse.config import load_settings
from lakehouse.pipeline import parse_stages


def _commands() -> list[str]:
    """Every subcommand the parser knows, so a new one is checked without being listed here."""
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


def test_the_documented_commands_exist() -> None:
    documented = {"generate", "deliver", "run", "link", "serve-bi", "status", "history", "explain"}
    assert documented <= set(_commands())


@pytest.mark.parametrize("command", _commands())
def test_every_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--env" in out and len(out) > 200


def test_long_commands_take_a_progress_interval() -> None:
    parser = build_parser()
    assert parser.parse_args(["run"]).progress == 30
    assert parser.parse_args(["run", "--progress", "0"]).progress == 0
    assert parser.parse_args(["demo", "--progress", "5"]).progress == 5
    assert parser.parse_args(["link", "--input", "a.csv", "--mapping", "m.yaml", "--out", "o"]).progress == 30
    assert not hasattr(parser.parse_args(["status"]), "progress")  # quick commands have no stages to report


def test_unknown_environment_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--env", "nowhere"]) == EXIT_USAGE
    assert "no such environment 'nowhere'" in capsys.readouterr().err


def test_unknown_stage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--stages", "bronze,polish"]) == EXIT_USAGE
    assert "unknown stage(s) polish" in capsys.readouterr().err


def test_bi_state_dir_only_in_the_foreground(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["serve-bi", "--state-dir", str(tmp_path)]) == EXIT_USAGE
    assert "--state-dir goes with --foreground" in capsys.readouterr().err


def test_stages_run_in_pipeline_order() -> None:
    assert parse_stages("public,bronze") == ["bronze", "public"]
    assert parse_stages(None) == ["bronze", "silver", "link", "gold", "public"]


def test_demo_refuses_to_mix_two_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAKEHOUSE_STORAGE_ROOT", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_HMAC_KEY", "test-only-hmac-key-not-a-secret")
    (tmp_path / "landing" / "cde" / "k12_enrollment" / sample_delivery_id(100, 1)).mkdir(parents=True)
    assert main(["demo", "--people", "200", "--seed", "1"]) == EXIT_USAGE
    assert "make clean-data" in capsys.readouterr().err
    assert sample_delivery_id(200, 1) == sample_delivery_id(200, 1) != sample_delivery_id(200, 2)


def test_link_options_set_retrain_and_full_relink() -> None:
    settings = load_settings("local")
    assert settings.matching is not None
    assert not settings.matching.registry.retrain and settings.matching.incremental
    changed = with_link_options(settings, retrain=True, full_relink=True).matching
    assert changed is not None and changed.registry.retrain and not changed.incremental
    assert with_link_options(settings, retrain=False, full_relink=False) == settings


def test_link_needs_input_mapping_and_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["link", "--input", "a.csv"])
    assert exit_info.value.code == 2
    assert "--mapping" in capsys.readouterr().err


def test_link_reports_a_missing_mapping_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "people.csv"
    data.write_text("id,name\n1,ANA\n", encoding="utf-8")
    code = main(["link", "--input", str(data), "--mapping", str(tmp_path / "none.yaml"), "--out", str(tmp_path)])
    assert code == EXIT_USAGE
    assert "none.yaml: cannot read the mapping file" in capsys.readouterr().err


def test_run_refuses_to_start_without_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LAKEHOUSE_HMAC_KEY", raising=False)
    assert main(["run", "--env", "s3"]) == EXIT_USAGE  # before any Spark session or S3 call
    assert "LAKEHOUSE_HMAC_KEY is not set" in capsys.readouterr().err


def test_deliver_refuses_an_unknown_feed_and_names_the_known(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "k.csv"
    data.write_text("a\n")
    assert main(["deliver", "--partner", "cde", "--feed", "k12_enrolment", str(data)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "partner cde has no feed 'k12_enrolment'" in err and "k12_enrollment" in err
