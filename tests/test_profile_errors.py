"""Profile settings that used to end in a traceback (exit 1) are input errors (exit 2) with a
message naming the file and the key (issue 19): non-numeric or out-of-range numbers, wrong types,
and any template other than env_var() (rendering is not Jinja: nothing else is evaluated, so
``{{ range(200000) }}`` or a huge string product cannot run)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from warehouse_rca.cli import main
from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.profiles import load_target

PG = "      type: postgres\n      host: 127.0.0.1\n      user: u\n      dbname: d\n"
DUCK = "      type: duckdb\n      path: wh.duckdb\n"


def _profiles(folder: Path, body: str) -> None:
    (folder / "profiles.yml").write_text("warehouse_rca:\n  target: t\n  outputs:\n    t:\n" + body)


CASES = [
    # (profile body under outputs.t, message fragment)
    (PG + "      port: abc\n", "outputs.t.port: must be a whole number from 1 to 65535, not 'abc'"),
    (PG + "      port: 99999\n", "outputs.t.port: must be a whole number"),
    (PG + "      port: 54.5\n", "outputs.t.port: must be a whole number"),
    (PG + "      port: true\n", "outputs.t.port: must be a whole number"),
    (PG + "      port: [5432]\n", "outputs.t.port: must be a whole number"),
    (PG + "      connect_timeout: soon\n", "outputs.t.connect_timeout: must be a whole number"),
    (PG + "      statement_timeout: abc\n", "outputs.t.statement_timeout: must be a number"),
    (PG + "      statement_timeout: -5\n", "outputs.t.statement_timeout: must be a number"),
    (PG + "      statement_timeout: .nan\n", "outputs.t.statement_timeout: must be a number"),
    (PG + "      statement_timeout: .inf\n", "outputs.t.statement_timeout: must be a number"),
    (DUCK + "      retries: many\n", "outputs.t.retries: must be a whole number"),
    (DUCK + "      retries: -1\n", "outputs.t.retries: must be a whole number"),
    (DUCK + "      retry_delay: abc\n", "outputs.t.retry_delay: must be a number"),
    (DUCK + "      read_only: maybe\n", "outputs.t.read_only: must be true or false"),
    (DUCK + "      schema: [1, 2]\n", "outputs.t.schema: must be a string"),
    (DUCK + "      schema: \"\"\n", "outputs.t.schema: must be a non-empty schema name"),
    (DUCK + "      path: {a: 1}\n", "outputs.t.path: must be a string"),
    ("      type: [duckdb]\n", "outputs.t.type: must be a string"),
    (PG + "      host: \"{{ range(200000) }}\"\n", "outputs.t.host: only {{ env_var('NAME') }}"),
    (PG + "      host: \"{{ range(200000) | list | length }}\"\n", "outputs.t.host: only {{ env_var('NAME') }}"),
    (DUCK.replace("wh.duckdb", "\"{{ 'a' * 100000000 }}\""), "outputs.t.path: only {{ env_var('NAME') }}"),
    (DUCK.replace("wh.duckdb", "\"{% for i in range(9) %}x{% endfor %}\""), "outputs.t.path: only {{ env_var('NAME') }}"),
    (DUCK.replace("wh.duckdb", "\"{{ env_var('HOME') | upper }}\""), "outputs.t.path: only {{ env_var('NAME') }}"),
    (DUCK.replace("wh.duckdb", "\"{{ cycler.__init__.__globals__ }}\""), "outputs.t.path: only {{ env_var('NAME') }}"),
    (PG + "      password: \"{{ range(200000) }}\"\n", "outputs.t.password: secrets must be an env_var() reference"),
    (PG + "      port: \"{{ env_var('RCA_NO_SUCH_PORT_VAR') }}\"\n", "'RCA_NO_SUCH_PORT_VAR' is not set"),
    (PG + "      work_mem: lots\n", "outputs.t.work_mem: must be a memory size such as 256MB"),
    (PG + "      work_mem: \"64MB -c log_statement=all\"\n", "outputs.t.work_mem: must be a memory size"),
    (PG + "      work_mem: 3TB\n", "outputs.t.work_mem: must be a memory size"),
    (PG + "      work_mem: 10kB\n", "outputs.t.work_mem: must be a memory size"),
    (PG + "      work_mem: 1.5GB\n", "outputs.t.work_mem: must be a memory size"),
]


@pytest.mark.parametrize(("body", "fragment"), CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_bad_profile_settings_are_exit_2_with_a_message(tmp_path: Path, body: str, fragment: str) -> None:
    _profiles(tmp_path, body)
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["history", "m", "--profiles-dir", str(tmp_path)], catch_exceptions=False)
    assert time.perf_counter() - started < 10
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "profiles.yml" in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("text", "fragment"), [
    ("- a\n- b\n", "no profile named 'warehouse_rca'"),
    ("warehouse_rca:\n  outputs: [1]\n", "has no outputs"),
    ("warehouse_rca:\n  target: [1]\n  outputs:\n    t:\n      type: duckdb\n", "is not among outputs"),
    ("warehouse_rca: {outputs: {t: {type: duckdb}}\n", "not valid YAML"),
])
def test_malformed_profiles_files(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "profiles.yml").write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_target(str(tmp_path))


def test_a_profile_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "profiles.yml").write_bytes(b"warehouse_rca:\n  outputs:\n    t:\n      type: \xff\xfe\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_target(str(tmp_path))


def test_numbers_from_env_vars_are_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCA_PORT", "6543")
    monkeypatch.setenv("RCA_RO", "false")
    _profiles(tmp_path, PG + "      port: \"{{ env_var('RCA_PORT') }}\"\n      statement_timeout: 30\n"
                        "      retries: \"{{ env_var('RCA_RETRIES', '3') }}\"\n      read_only: \"{{ env_var('RCA_RO') }}\"\n")
    settings = load_target(str(tmp_path)).settings
    assert settings["port"] == 6543 and settings["retries"] == 3 and settings["statement_timeout"] == 30.0
    assert settings["read_only"] is False


@pytest.mark.parametrize(("value", "setting"), [("256MB", "256MB"), ("64 mb", "64MB"), (65536, "65536kB"),
                                                ("1GB", "1GB")])
def test_work_mem_is_read_as_postgres_writes_it(tmp_path: Path, value: object, setting: str) -> None:
    _profiles(tmp_path, PG + f"      work_mem: {value}\n")
    assert load_target(str(tmp_path)).settings["work_mem"] == setting


@pytest.mark.slow
@pytest.mark.engine
def test_work_mem_reaches_the_postgres_session(tmp_path: Path, postgres_target) -> None:
    """The profile's work_mem is the session's (a real server), also after a reconnect."""
    import yaml

    from warehouse_rca.engines import connect

    settings = {**postgres_target.settings, "work_mem": "48MB"}
    (tmp_path / "profiles.yml").write_text(yaml.safe_dump(
        {"warehouse_rca": {"target": "t", "outputs": {"t": {"type": "postgres", **settings}}}}))
    engine = connect(load_target(str(tmp_path)))
    try:
        assert engine.query("SELECT current_setting('work_mem') AS w").iloc[0, 0] == "48MB"
        engine.close()
        engine = connect(load_target(str(tmp_path)))
        assert engine.query("SELECT current_setting('work_mem') AS w").iloc[0, 0] == "48MB"
    finally:
        engine.close()
