"""Secrets never reach output (issue 19): every command of the CLI runs under --debug with a
profile and a project holding a marker secret (a password, an api_key, a Spark-style url with an
inline ;token=, a user:password@ URL, a webhook whose path is a Slack-style token) and all of its
stdout and stderr is scanned for the marker; plus the redaction rules themselves."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import Webhook
from tests.test_alerts_security import PROJECT, shop  # noqa: F401 - shop is a fixture
from warehouse_rca.cli import main
from warehouse_rca.cli.main import COMMANDS
from warehouse_rca.errors import ConfigError, WarehouseError, redact
from warehouse_rca.spec.profiles import Target, load_target

REPO = Path(__file__).resolve().parent.parent
MARKER = "S3CR3T-MARKER"


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize("key", ["password", "passwd", "pwd", "db_pwd", "api_key", "access_token",
                                 "client_secret", "private_key_passphrase", "private_key", "token",
                                 "secret", "API_KEY", "private_key_file_pwd"])
def test_secret_key_spellings(key: str, tmp_path: Path) -> None:
    assert Target.is_secret_key(key)
    (tmp_path / "profiles.yml").write_text(
        f"warehouse_rca:\n  outputs:\n    t:\n      type: duckdb\n      {key}: {MARKER}\n")
    with pytest.raises(ConfigError, match=f"{key}: secrets must be an env_var") as caught:
        load_target(str(tmp_path))
    assert MARKER not in str(caught.value)
    assert MARKER not in repr(Target("t", "x", {key: MARKER}, "s"))


@pytest.mark.parametrize("text", [
    f"sc://workspace.cloud.databricks.com:443/;token={MARKER}",
    f"sc://workspace:443/;user_id=me;token={MARKER};x=1",
    f"postgresql://bob:{MARKER}@db.example.com:5432/analytics",
    f"https://{MARKER}@api.example.com/v1",
    f"https://hooks.slack.com/services/T000/B000/{MARKER}",
    f"https://x.example.com/hook?access_token={MARKER}&a=1",
    f"host=db password={MARKER} user=bob",
    f"api_key={MARKER}",
])
def test_credentials_inside_urls_are_redacted(text: str) -> None:
    assert MARKER not in redact(text) and "***" in redact(text)
    assert MARKER not in str(WarehouseError(f"cannot reach Spark Connect at {text}: refused"))
    assert MARKER not in repr(Target("t", "spark", {"url": text, "host": text}, "s"))
    assert MARKER not in str(Target("t", "spark", {"url": text}, "s").redacted())


def test_ordinary_text_is_left_alone() -> None:
    for text in ("https://bi.example.com/rca/run/abc", "the password is wrong", "a@b.c", "schema rca"):
        assert redact(text) == text


def test_unexpected_errors_keep_a_traceback_without_the_secret(tmp_path: Path) -> None:
    """An exit-1 bug prints its traceback through the CLI's excepthook: redacted."""
    script = ("import warehouse_rca.errors  # loaded by every command\n"
              "from warehouse_rca.cli.logs import _configure_logging\n"
              "_configure_logging(True)\n"
              f"raise ValueError('cannot open https://hooks.slack.com/services/T/B/{MARKER} or "
              f"sc://h:443/;token={MARKER}')\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" in run.stderr and "ValueError" in run.stderr
    assert MARKER not in run.stderr + run.stdout


# --------------------------------------------------------------------------- every command


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _profiles(folder: Path) -> None:
    (folder / "profiles.yml").write_text(
        "warehouse_rca:\n  target: duck\n  outputs:\n"
        "    duck:\n      type: duckdb\n      path: warehouse_rca.duckdb\n      schema: rca\n"
        "      password: \"{{ env_var('RCA_MARKER_PW') }}\"\n"
        "      api_key: \"{{ env_var('RCA_MARKER_KEY') }}\"\n"
        f"      url: \"sc://spark.example.com:443/;token={MARKER}\"\n"
        f"      host: \"https://bob:{MARKER}@dbc.example.com\"\n"
        "    pg:\n      type: postgres\n      host: 127.0.0.1\n"
        f"      port: {_closed_port()}\n      user: bob\n      dbname: d\n      connect_timeout: 2\n"
        "      password: \"{{ env_var('RCA_MARKER_PW') }}\"\n"
        "    pgurl:\n      type: postgres\n"
        f"      host: \"postgresql://bob:{MARKER}@127.0.0.1\"\n      port: abc\n")


def test_every_command_under_debug_never_prints_the_marker(shop: Path, webhook: Webhook,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(shop)
    monkeypatch.setenv("RCA_MARKER_PW", MARKER + "-pw")
    monkeypatch.setenv("RCA_MARKER_KEY", MARKER + "-key")
    hook_url = webhook.url.replace("/hook", f"/services/T0/B0/{MARKER}")
    monkeypatch.setenv("RCA_MARKER_HOOK", hook_url)
    _profiles(shop)
    (shop / "warehouse_rca.yml").write_text(
        PROJECT + "alerts:\n  webhook:\n    url: \"{{ env_var('RCA_MARKER_HOOK') }}\"\n")
    (shop / "broken.yml").write_text(
        PROJECT + f"alerts:\n  webhook:\n    url: \"http://127.0.0.1:9/services/T/B/{MARKER} \"\n")
    periods = ["--baseline", "2026-11-10:2026-11-16", "--current", "2026-11-20:2026-11-20"]
    outputs: dict[str, str] = {}
    ran: set[str] = set()

    def invoke(name: str, *args: str, code: int | None = 0) -> str:
        ran.add(args[0])
        result = CliRunner().invoke(main, ["--debug", *args], catch_exceptions=False)
        text = result.output + (result.stderr if result.stderr_bytes is not None else "")
        if code is not None:
            assert result.exit_code == code, (name, text[-3000:])
        outputs[name] = text
        return result.stdout

    doc = json.loads(invoke("investigate", "investigate", "conversion_rate", *periods, "--format", "json"))
    run_id = doc["run_id"]
    invoke("investigate-text", "investigate", "conversion_rate", *periods)
    invoke("investigate-bad-filter", "investigate", "conversion_rate", *periods, "--filter", "nope = 1", code=2)
    invoke("sql", "sql", "conversion_rate", *periods)
    invoke("report", "report", run_id, "-o", str(shop / "r.html"))
    invoke("feedback", "feedback", run_id, "1", "--confirm", "--by", "tester")
    invoke("history", "history", "conversion_rate")
    invoke("review", "review", "conversion_rate")
    invoke("metrics", "metrics")
    invoke("dbt-sources", "dbt-sources")
    invoke("dimensions-suggest", "dimensions", "suggest", "sessions")
    invoke("dimensions-drift", "dimensions", "drift", "conversion_rate", *periods)
    invoke("detect", "detect", "conversion_rate", "--as-of", "2026-11-20", code=10)
    invoke("monitor", "monitor", "--as-of", "2026-11-21", "--backfill", "2026-11-19:2026-11-21", code=10)
    assert webhook.bodies, outputs["monitor"]  # the alert went out through the marked URL
    invoke("monitor-broken-url", "monitor", "--project", "broken.yml", "--as-of", "2026-11-20", code=2)
    invoke("pg-unreachable", "investigate", "conversion_rate", *periods, "--target", "pg", code=3)
    invoke("pg-bad-port", "history", "conversion_rate", "--target", "pgurl", code=2)
    invoke("demo", "demo", "--dir", str(shop / "demo"), "--sessions-per-day", "300", "--format", "json")
    assert ran >= set(COMMANDS), set(COMMANDS) - ran
    assert "target duck (duckdb)" in outputs["investigate"]  # --debug really logged the target
    assert "/* warehouse-rca run_id=" in outputs["investigate"]  # ... and the statements
    assert "port" in outputs["pg-bad-port"]
    leaks = [name for name, text in outputs.items() if MARKER in text]
    assert not leaks, {name: outputs[name][outputs[name].index(MARKER) - 200:][:400] for name in leaks}


def test_commands_in_a_real_process_never_print_the_marker(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The same, as a scheduler runs it (a process: its stderr, tracebacks included)."""
    _profiles(shop)
    (shop / "warehouse_rca.yml").write_text(
        PROJECT + f"alerts:\n  webhook:\n    url: \"https://hooks.slack.com/services/T/B/{MARKER} \"\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RCA_MARKER_PW": MARKER, "RCA_MARKER_KEY": MARKER}
    for args, code in ((["monitor", "--as-of", "2026-11-20"], 2),
                       (["investigate", "conversion_rate", "--baseline", "2026-11-10:2026-11-16",
                         "--current", "2026-11-20:2026-11-20", "--target", "pg"], 3)):
        run = subprocess.run([sys.executable, "-m", "warehouse_rca.cli", "--debug", *args], cwd=shop, env=env,
                             capture_output=True, text=True, check=False, timeout=120)
        assert run.returncode == code, run.stdout + run.stderr
        assert MARKER not in run.stdout + run.stderr
