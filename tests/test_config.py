"""Config loading: shipped conf is valid; bad files stop the run naming the file and the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lakehouse.config import ConfigError, Settings, load_settings

CONF = Path(__file__).resolve().parent.parent / "conf"


@pytest.fixture()
def conf_copy(tmp_path: Path) -> Path:
    target = tmp_path / "conf"
    shutil.copytree(CONF, target)
    return target


def test_shipped_conf_loads_every_partner_and_feed() -> None:
    settings = load_settings("local", CONF)
    assert isinstance(settings, Settings)
    assert {p.name for p in settings.partners} == {
        "cde", "cccco", "csu", "ucop", "csac", "ctc", "dhcs", "dss", "edd",
    }  # fmt: skip
    assert len(settings.feeds()) >= 15
    formats = {f.format for f in settings.feeds()}
    assert {"csv", "jsonl", "fixed_width"} <= formats
    assert settings.table("silver", "person_records") == "silver.person_records"
    assert settings.feed("cde", "k12_enrollment").key == "cde_k12_enrollment"


def test_settings_are_frozen() -> None:
    settings = load_settings("local", CONF)
    with pytest.raises(AttributeError):
        settings.env = "other"  # type: ignore[misc]


def test_storage_root_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAKEHOUSE_STORAGE_ROOT", "s3a://bucket/prefix")
    with pytest.raises(
        ConfigError, match=r"storage\.metastore is s3a://bucket/prefix/metastore, but the embedded Derby"
    ):
        load_settings("local", CONF)  # a URI root leaves the metastore nowhere local
    monkeypatch.setenv("LAKEHOUSE_LOCAL_ROOT", str(tmp_path))
    settings = load_settings("local", CONF)
    assert settings.storage.path("landing") == "s3a://bucket/prefix/landing"
    assert settings.storage.path("warehouse") == "s3a://bucket/prefix/warehouse"
    assert settings.storage.path("metastore") == f"{tmp_path}/metastore"
    assert settings.storage.path("mlflow") == f"{tmp_path}/mlflow"
    assert settings.storage.uses_s3()


def test_s3_environment_endpoint_from_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    s3 = load_settings("s3", CONF)
    assert s3.storage.path("landing") == "s3a://c2c-landing"
    assert s3.s3.endpoint_url() == "http://127.0.0.1:9320"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert s3.s3.endpoint_url() == "http://127.0.0.1:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
    assert s3.s3.endpoint_url() == "http://127.0.0.1:2"


def test_relative_root_is_relative_to_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEHOUSE_STORAGE_ROOT", raising=False)
    settings = load_settings("local", CONF)
    assert settings.storage.root == str((CONF.parent / "data").resolve())


def test_unknown_key_names_file_and_key(conf_copy: Path) -> None:
    (conf_copy / "env" / "local.yaml").write_text("spark:\n  mastr: local[2]\n")
    with pytest.raises(ConfigError, match=r"env/local\.yaml: unknown key 'spark\.mastr'"):
        load_settings("local", conf_copy)


def test_wrong_type_names_file_and_key(conf_copy: Path) -> None:
    text = (conf_copy / "base.yaml").read_text().replace("shuffle_partitions: 8", "shuffle_partitions: eight")
    (conf_copy / "base.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"base\.yaml: key 'spark\.shuffle_partitions' must be an integer"):
        load_settings("local", conf_copy)


def test_missing_required_key_names_file_and_key(conf_copy: Path) -> None:
    text = (conf_copy / "partners" / "ctc.yaml").read_text().replace("    record_key: credential_id\n", "")
    (conf_copy / "partners" / "ctc.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"ctc\.yaml: missing required key 'feeds\.credentials\.record_key'"):
        load_settings("local", conf_copy)


def test_unknown_environment_lists_known(conf_copy: Path) -> None:
    known = "compose, emr, kubernetes, large, local, s3, standalone"
    with pytest.raises(ConfigError, match=rf"no such environment 'prod' \(known: {known}\)"):
        load_settings("prod", conf_copy)


def test_bad_identity_role_is_rejected(conf_copy: Path) -> None:
    path = conf_copy / "partners" / "ctc.yaml"
    path.write_text(path.read_text().replace("identity: middle_name", "identity: middle"))
    with pytest.raises(ConfigError, match=r"ctc\.yaml: key 'feeds\.credentials\.columns\[3\]\.identity'"):
        load_settings("local", conf_copy)


def test_fixed_width_needs_widths(conf_copy: Path) -> None:
    path = conf_copy / "partners" / "edd.yaml"
    path.write_text(path.read_text().replace("{name: naics, width: 6,", "{name: naics,"))
    with pytest.raises(ConfigError, match=r"edd\.yaml: key 'feeds\.ui_wages\.columns\[5\]\.width' is required"):
        load_settings("local", conf_copy)


def test_literal_values_are_checked(conf_copy: Path) -> None:
    path = conf_copy / "partners" / "ucop.yaml"
    path.write_text(path.read_text().replace("format: jsonl", "format: xml", 1))
    with pytest.raises(ConfigError, match=r"ucop\.yaml: key 'feeds\.uc_enrollment\.format' must be one of"):
        load_settings("local", conf_copy)


def test_hmac_key_must_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings("local", CONF)
    monkeypatch.delenv("LAKEHOUSE_HMAC_KEY", raising=False)
    with pytest.raises(ConfigError, match="LAKEHOUSE_HMAC_KEY is not set"):
        settings.security.hmac_key()
    monkeypatch.setenv("LAKEHOUSE_HMAC_KEY", "k3y-9x")
    with pytest.raises(ConfigError, match="shorter than 16") as refused:
        settings.security.hmac_key()
    assert "k3y-9x" not in str(refused.value)  # the error names the variable, never its value
    monkeypatch.setenv("LAKEHOUSE_HMAC_KEY", "a-long-enough-test-key")
    assert settings.security.hmac_key() == b"a-long-enough-test-key"


def test_demo_key_only_where_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Makefile's published key serves the one-machine environments only (local mode and the stand-in cluster
    on 127.0.0.1); s3 refuses it."""
    makefile = (CONF.parent / "Makefile").read_text()
    demo_key = next(line.split(":=")[1].strip() for line in makefile.splitlines() if line.startswith("DEMO_KEY"))
    monkeypatch.setenv("LAKEHOUSE_HMAC_KEY", demo_key)
    for env in ("local", "large", "standalone"):
        assert load_settings(env, CONF).security.hmac_key() == demo_key.encode()
    with pytest.raises(ConfigError, match="demo key of the synthetic samples"):
        load_settings("s3", CONF).security.hmac_key()
    monkeypatch.setenv("LAKEHOUSE_HMAC_KEY", "a-key-of-this-deployment-only")
    assert load_settings("s3", CONF).security.hmac_key() == b"a-key-of-this-deployment-only"


def test_no_secret_in_any_config_file() -> None:
    for path in CONF.rglob("*.yaml"):
        text = path.read_text().lower()
        for word in ("password", "secret_key", "aws_secret", "hmac_key:"):
            assert word not in text, f"{path} mentions {word}"


def test_matching_engine_and_model_are_checked(conf_copy: Path) -> None:
    shipped = load_settings("local", CONF).matching
    assert shipped is not None and shipped.engine == "probabilistic"
    assert set(shipped.model.training_rules) <= {rule.name for rule in shipped.blocking}
    path = conf_copy / "matching.yaml"
    original = path.read_text()
    path.write_text(original.replace("engine: probabilistic", "engine: magic"))
    with pytest.raises(ConfigError, match=r"matching\.yaml: key 'engine' must be one of"):
        load_settings("local", conf_copy)
    path.write_text(original.replace("training_rules: [same_ssn,", "training_rules: [same_sn,"))
    with pytest.raises(ConfigError, match=r"matching\.yaml: key 'model\.training_rules' names 'same_sn'"):
        load_settings("local", conf_copy)
    path.write_text(original.replace("threshold: 0.95 ", "threshold: 1.5 "))
    with pytest.raises(ConfigError, match=r"matching\.yaml: key 'model\.threshold' must be between 0 and 1"):
        load_settings("local", conf_copy)
