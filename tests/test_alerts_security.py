"""Alerts under hostile data and concurrency (issue 19): markup from the data is escaped for the
channel, URLs are http(s) only, bad settings are refused when the project is read (exit 2, before
anything is written), and concurrent schedules send one incident once on DuckDB and PostgreSQL,
without losing it when a run dies between claiming and sending."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.test_alerts import incident, smtp  # noqa: F401 - smtp is a fixture
from warehouse_rca import alerts
from warehouse_rca.alerts import Incident, send_alerts, slack_payload
from warehouse_rca.cli import main
from warehouse_rca.engines import connect
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.alerts import (
    AlertSettings,
    EmailSettings,
    WebhookSettings,
    settings_from_mapping,
)
from warehouse_rca.spec.profiles import Target

REPO = Path(__file__).resolve().parent.parent
HOSTILE = "<!channel> <http://evil.example|click> <@U123> & <!here>"


class SlowHook:
    """A webhook that takes a while to answer (so concurrent senders overlap) and counts posts."""

    def __init__(self, delay: float = 0.3) -> None:
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(delay)
                hook.bodies.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/token-xyz"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_hook() -> Iterator[SlowHook]:
    hook = SlowHook()
    yield hook
    hook.close()


# --------------------------------------------------------------------------- escaping


def _all_text(payload: dict) -> list[str]:
    texts = [payload["text"]]
    for block in payload["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(e["text"] for e in block.get("elements", []))
    return texts


def test_slack_markup_from_the_data_is_escaped() -> None:
    hostile = incident(metric=f"rev {HOSTILE}", summary=f"Revenue fell \x1b]0;pwned\x07{HOSTILE}",
                       root_causes=[{"rank": 1, "narrative": f"country = {HOSTILE}"}])
    payload = slack_payload(hostile, "https://bi.example.com/rca?a=1&b=<2>")
    for text in _all_text(payload):
        assert "<" not in text and ">" not in text, text
        assert "\x1b" not in text and "\x07" not in text
    assert "&lt;!channel&gt;" in payload["text"] and "&lt;@U123&gt;" in payload["text"]
    assert "&amp; " in payload["text"]
    assert "Report: https://bi.example.com/rca?a=1&amp;b=&lt;2&gt;" in payload["text"]


def test_report_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match=r"alerts.report_url: needs an http\(s\) URL"):
        settings_from_mapping({"report_url": "javascript:alert(1)"}, "p.yml")
    # AlertSettings built in code: a non-http link is left out, never copied into the alert
    payload = slack_payload(incident(), "javascript:alert(document.cookie)")
    assert "javascript" not in json.dumps(payload)


def test_email_headers_hold_no_injected_lines(smtp) -> None:  # noqa: F811
    port, server = smtp
    settings = AlertSettings(email=EmailSettings(smtp_host="127.0.0.1", smtp_port=port, sender="rca@example.com",
                                                 recipients=("a@example.com",)))
    evil = incident(metric="m\r\nBcc: victim@evil.example\r\nX-Evil: 1", summary=f"<b>{HOSTILE}</b>\x1b[31m")
    result = send_alerts(evil, settings)
    assert result[0].sent, result[0].error
    message = message_from_bytes(server.messages[0]["data"], policy=policy.default)
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert "\n" not in message["Subject"] and "Bcc: victim" in message["Subject"]  # folded into one line
    assert message.get_content_type() == "text/plain"
    assert "\x1b" not in message.get_content()
    assert len(server.messages[0]["to"]) == 1


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(("raw", "fragment"), [
    ({"webhook": {"url": "http://h/x", "timeout": "abc"}}, "alerts.webhook.timeout: must be a number"),
    ({"webhook": {"url": "http://h/x", "timeout": -1}}, "alerts.webhook.timeout"),
    ({"webhook": {"url": "http://h/x", "timeout": float("nan")}}, "alerts.webhook.timeout"),
    ({"webhook": {"url": "http://h/x", "timeout": True}}, "alerts.webhook.timeout"),
    ({"webhook": {"url": "http://h/x", "timout": 3}}, "key 'timout': unknown key"),
    ({"webhook": {"url": "ftp://h/x"}}, "alerts.webhook.url: needs an http(s) URL"),
    ({"webhook": {"url": "javascript:alert(1)"}}, "alerts.webhook.url"),
    ({"webhook": {"url": "https://hooks.slack.com/services/T/B/S3CR3T x"}}, "spaces or control characters"),
    ({"webhook": {"url": "http://h:99999/x"}}, "alerts.webhook.url"),
    ({"webhook": {"url": "http://h:abc/x"}}, "alerts.webhook.url"),
    ({"webhook": {"url": "http:///x"}}, "alerts.webhook.url"),
    ({"webhook": "http://h/x"}, "alerts.webhook: must be a mapping"),
    ({"report_url": "javascript:alert(1)"}, "alerts.report_url"),
    ({"report_url": "data:text/html,<script>"}, "alerts.report_url"),
    ({"email": {"smtp_host": "h", "from": "a@b.c", "to": "c@d.e", "smtp_port": "abc"}}, "alerts.email.smtp_port: must be a port"),
    ({"email": {"smtp_host": "h", "from": "a@b.c", "to": "c@d.e", "smtp_port": 70000}}, "alerts.email.smtp_port"),
    ({"email": {"smtp_host": "h", "from": "a@b.c", "to": "c@d.e", "smtp_port": 0}}, "alerts.email.smtp_port"),
    ({"email": {"smtp_host": "h", "from": "a@b.c", "to": "c@d.e", "timeout": "abc"}}, "alerts.email.timeout"),
    ({"email": {"smtp_host": "h", "from": "a@b.c", "to": "c@d.e\r\nBcc: x@evil.io"}}, "alerts.email.to: must not contain line breaks"),
    ({"email": {"smtp_host": "h", "from": "a@b.c\nBcc: x@evil.io", "to": "c@d.e"}}, "alerts.email.from: must not contain line breaks"),
    ({"email": {"smtp_host": "h", "from": "a@b.c", "to": ["c@d.e", "x@y.z, w@v.u"]}}, "is not one mail address"),
    ({"email": {"smtp_host": "h", "from": "a@b.c", "to": ["nobody"]}}, "is not one mail address"),
    ({"email": {"smtp_host": "h", "from": "a@b.c", "to": [1]}}, "alerts.email.to: must be a non-empty string"),
    ({"email": {"smtp_host": "h\r\nx", "from": "a@b.c", "to": "c@d.e"}}, "alerts.email.smtp_host"),
    ({"email": {"smtp_host": "h", "from": "a@b.c", "to": "c@d.e", "starttls": "maybe"}}, "alerts.email.starttls"),
    ({"email": {"smtp_host": "h", "from": "a@b.c", "to": "c@d.e", "smtp_prot": 25}}, "key 'smtp_prot': unknown key"),
    ({"webhook": {"url": "{{ range(200000) }}"}}, "only {{ env_var('NAME') }}"),
    ({"webhook": {"url": "{% for x in y %}{% endfor %}"}}, "only {{ env_var('NAME') }}"),
])
def test_bad_alert_settings_are_config_errors_naming_the_key(raw: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(raw, "warehouse_rca.yml")
    message = str(caught.value)
    assert fragment in message and message.startswith("warehouse_rca.yml: "), message
    assert "S3CR3T" not in message


def test_good_alert_settings_are_parsed() -> None:
    settings = settings_from_mapping({
        "webhook": {"url": "https://hooks.example.com/x/y/z", "timeout": "5"},
        "email": {"smtp_host": "smtp.example.com", "smtp_port": "587", "starttls": "false",
                  "from": "RCA <rca@example.com>", "to": ["a@example.com", "b@example.com"]},
        "report_url": "https://bi.example.com/rca",
    }, "p")
    assert settings.webhook.timeout == 5.0 and settings.email.smtp_port == 587
    assert settings.email.starttls is False and settings.email.recipients == ("a@example.com", "b@example.com")
    assert "/x/y/z" not in repr(settings.webhook)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A small warehouse with one incident day (the monitor exits 10 on it)."""
    rng = np.random.default_rng(8)
    frames = []
    for day in pd.date_range("2026-08-01", "2026-11-25", freq="D"):
        n = 1500
        f = pd.DataFrame({"ts": day + pd.to_timedelta(rng.integers(0, 86400, n), unit="s"),
                          "device": rng.choice(["iOS", "Android"], n)})
        rate = np.where((day == pd.Timestamp("2026-11-20")) & (f["device"] == "iOS"), 0.005, 0.10)
        f["converted"] = (rng.random(n) < rate).astype(int)
        frames.append(f)
    con = duckdb.connect(str(tmp_path / "warehouse_rca.duckdb"))
    con.register("incoming", pd.concat(frames))
    con.execute("CREATE TABLE sessions AS SELECT * FROM incoming")
    con.close()
    return tmp_path


PROJECT = ("metrics:\n  conversion_rate:\n    table: sessions\n    time_column: ts\n    grain: day\n"
           "    numerator: sum(converted)\n    denominator: count(*)\n    dimensions: [device]\n"
           "    higher_is_better: true\n")


@pytest.mark.parametrize("alerts_yaml", [
    "alerts:\n  webhook:\n    url: http://127.0.0.1:9/hook\n    timeout: abc\n",
    "alerts:\n  email:\n    smtp_host: 127.0.0.1\n    smtp_port: 99999\n    from: a@b.c\n    to: c@d.e\n",
    "alerts:\n  email:\n    smtp_host: 127.0.0.1\n    from: a@b.c\n    to: \"c@d.e\\r\\nBcc: x@evil.io\"\n",
    "alerts:\n  webhook:\n    url: \"http://127.0.0.1:9/services/T/B/S3CR3T x\"\n",
    "alerts:\n  report_url: \"javascript:alert(1)\"\n",
])
def test_bad_alert_settings_fail_the_monitor_before_anything_is_written(shop: Path, alerts_yaml: str) -> None:
    (shop / "warehouse_rca.yml").write_text(PROJECT + alerts_yaml)
    old = os.getcwd()
    os.chdir(shop)
    try:
        result = CliRunner().invoke(main, ["monitor", "--as-of", "2026-11-20"], catch_exceptions=False)
    finally:
        os.chdir(old)
    assert result.exit_code == 2, result.output
    assert "warehouse_rca.yml: alerts." in result.output and "S3CR3T" not in result.output
    con = duckdb.connect(str(shop / "warehouse_rca.duckdb"), read_only=True)
    try:
        tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'rca'").fetchall()
    finally:
        con.close()
    assert tables == []  # no run, anomaly or bookmark written


# --------------------------------------------------------------------------- once under concurrency


def _race(engines: list, hook_url: str, item: Incident, **kw: object) -> list:
    settings = AlertSettings(webhook=WebhookSettings(url=hook_url))
    barrier = threading.Barrier(len(engines))
    results: list = [None] * len(engines)
    errors: list = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = send_alerts(item, settings, engine=engines[i], schema="rca", **kw)[0]
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def _duck_engines(path: Path, n: int) -> list[DuckDBEngine]:
    return [DuckDBEngine(Target("t", "duckdb", {"path": str(path), "schema": "rca"}, "t")) for _ in range(n)]


def test_four_concurrent_schedules_send_one_incident_once_on_duckdb(tmp_path: Path, slow_hook: SlowHook) -> None:
    engines = _duck_engines(tmp_path / "wh.duckdb", 4)
    try:
        results = _race(engines, slow_hook.url, incident())
        assert len(slow_hook.bodies) == 1
        assert sorted((r.sent, r.duplicate) for r in results) == [(False, True)] * 3 + [(True, False)]
        assert engines[0].query("SELECT COUNT(*) AS n FROM rca.alerts_sent").iloc[0, 0] == 1
        # and again later: still once
        assert _race(engines[:2], slow_hook.url, incident())[0].duplicate and len(slow_hook.bodies) == 1
    finally:
        for engine in engines:
            engine.close()


def test_without_any_lock_the_claim_check_still_never_sends_twice(tmp_path: Path, slow_hook: SlowHook,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine without a lock (Snowflake, Spark) across processes: no process lock, no engine
    lock; the re-read after the claim makes all but (at most) one give way."""
    import contextlib

    monkeypatch.setattr(alerts, "_PROCESS_LOCK", contextlib.nullcontext())
    engines = _duck_engines(tmp_path / "wh.duckdb", 4)
    try:
        for round_ in range(3):
            item = incident(start=datetime(2026, 11, 17 + round_))
            _race(engines, slow_hook.url, item)
        assert len(slow_hook.bodies) <= 3
        for round_ in range(3):  # a later run sends whatever a tie left unsent
            send_alerts(incident(start=datetime(2026, 11, 17 + round_)),
                        AlertSettings(webhook=WebhookSettings(url=slow_hook.url)), engine=engines[0], schema="rca")
        starts = sorted(b["incident"]["start"] for b in slow_hook.bodies)
        assert starts == [f"2026-11-{17 + r}T00:00:00" for r in range(3)]
    finally:
        for engine in engines:
            engine.close()


def test_a_run_that_dies_after_claiming_does_not_lose_the_alert(duck, slow_hook: SlowHook,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings = AlertSettings(webhook=WebhookSettings(url=slow_hook.url))

    def die(*args: object) -> None:
        raise KeyboardInterrupt  # the process is killed between claim and send

    monkeypatch.setattr(alerts, "_deliver", die)
    with pytest.raises(KeyboardInterrupt):
        send_alerts(incident(), settings, engine=duck, schema="rca")
    monkeypatch.undo()
    # while the claim is fresh another run leaves it alone (the claimer may still be sending) ...
    assert send_alerts(incident(), settings, engine=duck, schema="rca")[0].duplicate
    assert slow_hook.bodies == []
    # ... once it expired, the alert is sent, once
    later = send_alerts(incident(), settings, engine=duck, schema="rca", claim_timeout=timedelta(0))
    assert later[0].sent and len(slow_hook.bodies) == 1
    assert send_alerts(incident(), settings, engine=duck, schema="rca", claim_timeout=timedelta(0))[0].duplicate
    assert len(slow_hook.bodies) == 1


def test_a_failed_delivery_releases_its_claim_for_the_next_run(duck, slow_hook: SlowHook) -> None:
    broken = AlertSettings(webhook=WebhookSettings(url="http://127.0.0.1:1/hook", timeout=1))
    assert send_alerts(incident(), broken, engine=duck, schema="rca")[0].error
    settings = AlertSettings(webhook=WebhookSettings(url=slow_hook.url))
    assert send_alerts(incident(), settings, engine=duck, schema="rca")[0].sent  # no wait for expiry


def test_invalid_urls_built_in_code_fail_as_alert_errors_without_the_path(duck) -> None:
    settings = AlertSettings(webhook=WebhookSettings(url="http://127.0.0.1:9/services/T/B/S3CR3T x"))
    result = send_alerts(incident(), settings, engine=duck, schema="rca")[0]
    assert result.error and "S3CR3T" not in result.error and "127.0.0.1:9" in result.error
    mail = AlertSettings(email=EmailSettings(smtp_host="127.0.0.1", smtp_port=99999, sender="a@b.c",
                                             recipients=("c@d.e",), timeout=1))
    assert send_alerts(incident(), mail, engine=duck, schema="rca")[0].error


@pytest.mark.slow
@pytest.mark.engine
def test_four_concurrent_schedules_send_one_incident_once_on_postgres(postgres_target: Target,
                                                                      slow_hook: SlowHook) -> None:
    """Four processes (separate sessions, no shared thread lock) race to send one incident."""
    target = Target("pg", "postgres", {**postgres_target.settings, "schema": "alerts_race"}, "tests")
    with connect(target) as engine:
        engine.execute("DROP SCHEMA IF EXISTS alerts_race CASCADE")
    script = (
        "import json, sys, time\n"
        "from datetime import datetime\n"
        "from warehouse_rca.alerts import Incident, send_alerts\n"
        "from warehouse_rca.engines import connect\n"
        "from warehouse_rca.spec.alerts import AlertSettings, WebhookSettings\n"
        "from warehouse_rca.spec.profiles import Target\n"
        "settings, url, start_at = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3])\n"
        "engine = connect(Target('pg', 'postgres', settings, 'tests'))\n"
        "item = Incident(metric='conversion_rate', start=datetime(2026, 11, 17), end=datetime(2026, 11, 18),"
        " direction='down')\n"
        "time.sleep(max(0.0, start_at - time.time()))\n"
        "r = send_alerts(item, AlertSettings(webhook=WebhookSettings(url=url)), engine=engine)[0]\n"
        "print(json.dumps([r.sent, r.duplicate, r.error]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start_at = time.time() + 4
    procs = [subprocess.Popen([sys.executable, "-c", script, json.dumps(target.settings), slow_hook.url, str(start_at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outcomes.append(tuple(json.loads(out.strip().splitlines()[-1])))
    assert len(slow_hook.bodies) == 1, outcomes
    assert sorted(outcomes) == [(False, True, None)] * 3 + [(True, False, None)]
    with connect(target) as engine:
        assert engine.query('SELECT COUNT(*) AS n FROM "alerts_race"."alerts_sent"').iloc[0, 0] == 1
        engine.execute("DROP SCHEMA IF EXISTS alerts_race CASCADE")
