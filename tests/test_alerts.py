"""Alerts against local servers the tests start on 127.0.0.1: a webhook (HTTP) and SMTP."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from datetime import datetime
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pandas as pd
import pytest

from warehouse_rca.alerts import (
    Incident,
    WebhookSettings,
    incidents_from_outcome,
    send_alerts,
    send_incidents,
)
from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.alerts import AlertSettings, EmailSettings, settings_from_mapping


class Hook(BaseHTTPRequestHandler):
    bodies: list[dict] = []  # noqa: RUF012 - replaced per test
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[Hook]]]:
    handler = type("H", (Hook,), {"bodies": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/secret", handler
    server.shutdown()
    server.server_close()


class Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, MAIL, RCPT, DATA, QUIT."""

    messages: list[dict] = []  # noqa: RUF012 - replaced per test

    def handle(self) -> None:
        self.wfile.write(b"220 localhost test SMTP\r\n")
        envelope: dict = {"to": []}
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250 localhost\r\n")
            elif verb == "MAIL":
                envelope["from"] = line.decode().strip()
                self.wfile.write(b"250 OK\r\n")
            elif verb == "RCPT":
                envelope["to"].append(line.decode().strip())
                self.wfile.write(b"250 OK\r\n")
            elif verb == "DATA":
                self.wfile.write(b"354 go ahead\r\n")
                data = b""
                while (chunk := self.rfile.readline()) != b".\r\n":
                    data += chunk
                type(self).messages.append({**envelope, "data": data})
                self.wfile.write(b"250 queued\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


@pytest.fixture
def smtp() -> Iterator[tuple[int, type[Smtp]]]:
    handler = type("S", (Smtp,), {"messages": []})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def incident(**kw: object) -> Incident:
    base = {"metric": "conversion_rate", "start": datetime(2026, 11, 17), "end": datetime(2026, 11, 19),
            "direction": "down", "expected": 0.038, "actual": 0.034, "score": 6.1, "run_id": "abc123",
            "summary": "Conversion rate fell from 3.80% to 3.40% (-11%).",
            "root_causes": [{"rank": 1, "narrative": "device = ios: conversion rate fell."}],
            "value_format": "percent"}
    return Incident(**{**base, **kw})


def test_webhook_gets_one_slack_message_per_incident(webhook, duck) -> None:
    url, hook = webhook
    settings = AlertSettings(webhook=WebhookSettings(url=url))
    first = send_alerts(incident(), settings, engine=duck, schema="rca")
    assert [(r.channel, r.sent, r.duplicate, r.error) for r in first] == [("webhook", True, False, None)]
    body = hook.bodies[0]
    assert body["text"].startswith("conversion_rate fell unexpectedly on 2026-11-17 00:00: 3.40% vs expected 3.80%")
    assert "device = ios" in body["text"] and body["blocks"][0]["type"] == "header"
    # The same incident again (a rerun, a backfill, a later point of it): not sent again.
    again = send_alerts(incident(end=datetime(2026, 11, 20), score=7.0), settings, engine=duck, schema="rca")
    assert again[0].duplicate and not again[0].sent and len(hook.bodies) == 1
    sent = duck.query("SELECT incident_key, channel, metric FROM rca.alerts_sent")
    assert sent.values.tolist() == [[incident().key, "webhook", "conversion_rate"]]


def test_monitor_outcome_becomes_one_incident_not_one_per_point(webhook) -> None:
    url, hook = webhook
    excursion = SimpleNamespace(start=pd.Timestamp("2026-11-17"), end=pd.Timestamp("2026-11-19"),
                                direction="down", expected=0.038, actual=0.033, score=5.0)
    doc = {"run_id": "r1", "summary": "Conversion rate fell.", "root_causes": [],
           "periods": {"current": {"start": "2026-11-17T00:00:00"}}}
    outcome = SimpleNamespace(metric="conversion_rate", anomalies=[excursion], investigations=[doc])
    incidents = incidents_from_outcome(outcome, "percent")
    assert len(incidents) == 1 and incidents[0].run_id == "r1"
    results = send_incidents(incidents + incidents, AlertSettings(webhook=WebhookSettings(url=url)))
    assert [r.sent for r in results] == [True, False] and len(hook.bodies) == 1


def test_failed_delivery_is_reported_and_retried_later(webhook, duck) -> None:
    url, hook = webhook
    hook.status = 500
    settings = AlertSettings(webhook=WebhookSettings(url=url))
    result = send_alerts(incident(), settings, engine=duck, schema="rca")[0]
    assert not result.sent and "answered HTTP 500" in result.error and "secret" not in result.error
    hook.status = 200
    assert send_alerts(incident(), settings, engine=duck, schema="rca")[0].sent


def test_email_over_local_smtp(smtp, duck) -> None:
    port, server = smtp
    settings = AlertSettings(email=EmailSettings(smtp_host="127.0.0.1", smtp_port=port, sender="rca@example.com",
                                                 recipients=("a@example.com", "b@example.com")))
    result = send_alerts(incident(), settings, engine=duck, schema="rca")
    assert result[0].sent, result[0].error
    assert len(server.messages) == 1
    message = message_from_bytes(server.messages[0]["data"], policy=policy.default)
    assert message["Subject"] == "[warehouse-rca] conversion_rate fell unexpectedly on 2026-11-17 00:00: 3.40% vs expected 3.80%"
    assert message["To"] == "a@example.com, b@example.com" and len(server.messages[0]["to"]) == 2
    assert "warehouse-rca report abc123" in message.get_content()
    assert send_alerts(incident(), settings, engine=duck, schema="rca")[0].duplicate


def test_settings_from_project_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCA_HOOK", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("RCA_SMTP_PASSWORD", "s3cret")
    settings = settings_from_mapping({
        "webhook": {"url": "{{ env_var('RCA_HOOK') }}"},
        "email": {"smtp_host": "127.0.0.1", "smtp_port": 2525, "from": "r@x.io", "to": "a@x.io",
                  "username": "r", "password": "{{ env_var('RCA_SMTP_PASSWORD') }}"},
    }, "warehouse_rca.yml")
    assert settings.channels == ["webhook", "email"] and settings.webhook.url == "http://127.0.0.1:9/hook"
    assert settings.email.password == "s3cret" and "s3cret" not in repr(settings.email)
    with pytest.raises(ConfigError, match="password: secrets must be an env_var"):
        settings_from_mapping({"email": {"smtp_host": "h", "from": "a@b", "to": "c@d", "password": "plain"}}, "p")
    with pytest.raises(ConfigError, match="alerts.email.to: missing"):
        settings_from_mapping({"email": {"smtp_host": "h", "from": "a@b"}}, "p")
    with pytest.raises(ConfigError, match="key 'slack': unknown key"):
        settings_from_mapping({"slack": {}}, "p")
    assert settings_from_mapping(None, "p").channels == []
