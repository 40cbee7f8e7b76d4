"""Profiles (dbt-shaped, env_var interpolation, fallbacks) and project-file validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.periods import Period
from warehouse_rca.spec.profiles import load_target
from warehouse_rca.spec.project import load_project

PROFILES = """
warehouse_rca:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: "{{ env_var('RCA_TEST_DB', 'dev.duckdb') }}"
    prod:
      type: postgres
      host: db.internal
      user: rca
      password: "{{ env_var('RCA_TEST_PASSWORD') }}"
"""


def test_profile_target_and_env_var_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "profiles.yml").write_text(PROFILES)
    monkeypatch.delenv("RCA_TEST_DB", raising=False)
    target = load_target(str(tmp_path))
    assert (target.name, target.type, target.settings["path"]) == ("dev", "duckdb", "dev.duckdb")
    monkeypatch.setenv("RCA_TEST_DB", "/data/x.duckdb")
    assert load_target(str(tmp_path)).settings["path"] == "/data/x.duckdb"


def test_missing_env_var_names_itself_and_secrets_are_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "profiles.yml").write_text(PROFILES)
    monkeypatch.delenv("RCA_TEST_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="RCA_TEST_PASSWORD"):
        load_target(str(tmp_path), "prod")
    monkeypatch.setenv("RCA_TEST_PASSWORD", "s3cr3t-value")
    target = load_target(str(tmp_path), "prod")
    assert target.type == "postgres" and target.settings["password"] == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(target.redacted())


def test_unknown_target_and_default_embedded_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "profiles.yml").write_text(PROFILES)
    with pytest.raises(ConfigError, match="'staging' is not among outputs"):
        load_target(str(tmp_path), "staging")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.setenv("HOME", str(empty))
    target = load_target(None, None)
    assert target.type == "duckdb" and target.settings["path"].endswith(".duckdb")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("metrics:\n  m:\n    table: t\n    time_column: ts\n    dimensions: [a]\n", "key 'measure'"),
        ("metrics:\n  m:\n    table: t\n    time_column: ts\n    numerator: sum(a)\n    dimensions: [a]\n", "key 'denominator'"),
        ("metrics:\n  m:\n    table: t\n    measure: sum(a)\n    dimensions: [a]\n", "key 'time_column'"),
        ("metrics:\n  m:\n    table: t\n    time_column: ts\n    measure: sum(a)\n    dimensions: []\n", "key 'dimensions'"),
        ("metrics:\n  m:\n    table: t\n    time_column: ts\n    measure: sum(a)\n    dimensions: [a]\n    grain: month\n", "key 'grain'"),
        ("metrics:\n  m:\n    table: t\n    time_column: ts\n    measure: sum(a)\n    dimensions: [a]\n    colour: red\n", "key 'colour'"),
        ("metrics: [1, 2]\n", "top-level 'metrics:'"),
    ],
)
def test_spec_errors_name_file_metric_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "warehouse_rca.yml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_project(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    if "key" in message:
        assert "metric 'm'" in str(err.value)


def test_unknown_metric_lists_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "warehouse_rca.yml"
    path.write_text("metrics:\n  revenue:\n    table: t\n    time_column: ts\n    measure: sum(a)\n    dimensions: [a]\n")
    with pytest.raises(ConfigError, match="defined: revenue"):
        load_project(path).metric("conversion")


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-11-10:2026-11-16", "2026-11-10T00:00:00", "2026-11-17T00:00:00"),
        ("2026-11-10 06:00:2026-11-10 18:00", "2026-11-10T06:00:00", "2026-11-10T18:00:00.000001"),
        ("2026-11-10T06:00:00:2026-11-16", "2026-11-10T06:00:00", "2026-11-17T00:00:00"),
    ],
)
def test_periods_are_inclusive(text: str, start: str, end: str) -> None:
    period = Period.parse(text)
    assert period.start.isoformat() == start and period.end_exclusive.isoformat() == end


def test_period_errors() -> None:
    with pytest.raises(ConfigError, match="ends before it starts"):
        Period.parse("2026-11-16:2026-11-10")
    with pytest.raises(ConfigError, match="not a range"):
        Period.parse("last week")
