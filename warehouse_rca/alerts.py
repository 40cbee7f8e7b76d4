"""Alerts after monitoring finds something: a Slack-compatible webhook and email (SMTP).

Configured in the project file, top level (secrets only as ``env_var()`` references)::

    alerts:
      webhook:
        url: "{{ env_var('RCA_SLACK_WEBHOOK') }}"   # Slack incoming webhook, or any JSON endpoint
        timeout: 10                                  # seconds (default 10)
      email:
        smtp_host: smtp.example.com
        smtp_port: 587                               # default 25
        starttls: true                               # default false
        username: alerts@example.com                 # optional
        password: "{{ env_var('RCA_SMTP_PASSWORD') }}"
        from: alerts@example.com
        to: [analysts@example.com]                   # or one address
      report_url: https://bi.example.com/rca         # optional: a link put in each alert

One alert per *incident*, not per point: an incident is one excursion of a metric (the monitor
merges consecutive anomalous buckets), keyed by ``metric`` and its first bucket. With an engine,
:func:`send_alerts` records each delivery in the ``alerts_sent`` table of the findings schema and
never sends the same incident to the same channel twice (reruns and backfills stay quiet); a failed
delivery is not recorded, so the next run retries it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any

from sqlglot import exp

from warehouse_rca import narrative, sql
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError
from warehouse_rca.findings.feedback import eq, select, table_exists
from warehouse_rca.spec.alerts import AlertSettings, EmailSettings, WebhookSettings

log = logging.getLogger("warehouse_rca.alerts")

ALERTS_SENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("incident_key", "VARCHAR"),
    ("channel", "VARCHAR"),
    ("metric", "VARCHAR"),
    ("incident_start", "TIMESTAMP"),
    ("run_id", "VARCHAR"),
    ("sent_at", "TIMESTAMP"),
)




# --------------------------------------------------------------------------- incidents


@dataclass
class Incident:
    """One excursion of a metric (possibly many buckets) and its investigation, if any."""

    metric: str
    start: datetime
    end: datetime
    direction: str
    expected: float | None = None
    actual: float | None = None
    score: float | None = None
    run_id: str | None = None
    summary: str | None = None
    root_causes: list[dict[str, Any]] = field(default_factory=list)
    value_format: str = "number"

    @property
    def key(self) -> str:
        """Stable across reruns and points of the same incident: metric and first bucket (a stale
        source: metric and its newest data, so one alert per time the data stops)."""
        raw = f"{self.metric}\x1f{self.start.isoformat()}"
        if self.direction == STALE:
            raw += "\x1fstale"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def title(self) -> str:
        if self.direction == STALE:
            return self.summary or f"{self.metric}: no new data"
        what = {"up": "rose", "down": "fell"}.get(self.direction, "moved")
        head = f"{self.metric} {what} unexpectedly on {self.start:%Y-%m-%d %H:%M}"
        if self.actual is not None and self.expected is not None:
            head += (f": {narrative.fmt_value(self.actual, self.value_format)} vs expected "
                     f"{narrative.fmt_value(self.expected, self.value_format)}")
        return head

    def lines(self) -> list[str]:
        if self.direction == STALE:
            return [("The monitor examined nothing newer; its bookmark stays before the missing "
                     "data, which the next run examines once it is loaded.")]
        out = [self.summary] if self.summary else []
        for cause in self.root_causes[:3]:
            out.append(
                f"{cause.get('rank', '-')}. {cause.get('narrative') or cause.get('segment_label')}"
            )
        if self.run_id:
            out.append(
                f"Run {self.run_id}: `warehouse-rca report {self.run_id}` for charts and evidence."
            )
        return out


#: The ``direction`` of an incident that is a source without new data, not a move of the metric.
STALE = "stale"


def incidents_from_outcome(outcome: Any, value_format: str = "number") -> list[Incident]:
    """One :class:`Incident` per excursion of a monitor ``MetricOutcome`` (never one per point),
    paired with its investigation document when it has one."""
    docs = {
        d.get("periods", {}).get("current", {}).get("start"): d
        for d in getattr(outcome, "investigations", [])
        if isinstance(d, dict) and d.get("run_id")
    }
    out = []
    for exc in getattr(outcome, "anomalies", []):
        start = exc.start.to_pydatetime() if hasattr(exc.start, "to_pydatetime") else exc.start
        end = exc.end.to_pydatetime() if hasattr(exc.end, "to_pydatetime") else exc.end
        doc = docs.get(start.isoformat(), {})
        out.append(Incident(
            metric=outcome.metric, start=start, end=end, direction=exc.direction,
            expected=exc.expected, actual=exc.actual, score=exc.score, run_id=doc.get("run_id"),
            summary=doc.get("summary"), root_causes=doc.get("root_causes", []),
            value_format=value_format,
        ))
    if getattr(outcome, "stale", False):
        since = outcome.last_data or datetime(1970, 1, 1)
        out.append(Incident(metric=outcome.metric, start=since, end=since, direction=STALE,
                            summary=outcome.freshness, value_format=value_format))
    return out


# --------------------------------------------------------------------------- senders


def slack_payload(incident: Incident, report_url: str | None = None) -> dict[str, Any]:
    """Slack-compatible JSON: ``text`` (fallback, works on any webhook) plus ``blocks``."""
    lines = incident.lines()
    if report_url:
        lines.append(f"Report: {report_url}")
    text = f"{incident.title()}\n" + "\n".join(lines)
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": incident.title()[:150]}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900] or "(not investigated)"},
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"warehouse-rca incident {incident.key}"}
                ],
            },
        ],
        "incident": {
            "key": incident.key, "metric": incident.metric, "start": incident.start.isoformat(),
            "end": incident.end.isoformat(), "direction": incident.direction,
            "run_id": incident.run_id,
        },
    }


def send_webhook(
    incident: Incident, settings: WebhookSettings, report_url: str | None = None
) -> None:
    """POST the incident as JSON; raises :class:`AlertError` on a non-2xx answer or no answer."""
    body = json.dumps(slack_payload(incident, report_url)).encode()
    request = urllib.request.Request(
        settings.url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "warehouse-rca"},
    )
    # never the path: it holds the token
    host = urllib.parse.urlsplit(settings.url).netloc.rsplit("@", 1)[-1]
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        raise AlertError(f"webhook at {host} answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise AlertError(f"webhook at {host} unreachable: {reason}") from None
    if not 200 <= status < 300:
        raise AlertError(f"webhook at {host} answered HTTP {status}")


def email_message(
    incident: Incident, settings: EmailSettings, report_url: str | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[warehouse-rca] {incident.title()}"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["X-Warehouse-RCA-Incident"] = incident.key
    lines = incident.lines() + ([f"Report: {report_url}"] if report_url else [])
    message.set_content(incident.title() + "\n\n" + "\n".join(lines) + "\n")
    return message


def send_email(incident: Incident, settings: EmailSettings, report_url: str | None = None) -> None:
    """Send the incident by SMTP; raises :class:`AlertError` with the server's refusal."""
    message = email_message(incident, settings, report_url)
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            smtp.send_message(message)
    except smtplib.SMTPException as err:
        raise AlertError(f"SMTP server {where} refused the alert: {err}") from None
    except OSError as err:
        raise AlertError(f"SMTP server {where} unreachable: {err}") from None


class AlertError(ConfigError):
    """A delivery failed (exit code 2: the alert configuration or its endpoint is wrong)."""


@dataclass
class AlertResult:
    channel: str
    incident_key: str
    sent: bool = False
    duplicate: bool = False
    error: str | None = None


# --------------------------------------------------------------------------- dedupe


def _sent_table(schema: str) -> exp.Table:
    return exp.Table(this=sql.identifier("alerts_sent"), db=sql.identifier(schema))


def _already_sent(engine: Engine, schema: str, key: str) -> set[str]:
    table = _sent_table(schema)
    if not table_exists(engine, table):
        engine.execute_all(sql.template(
            "findings_ddl.sql.j2", schema=sql.identifier(schema), partition_by=None,
            tables=[{
                "name": table,
                "columns": [
                    {"name": sql.identifier(n), "type": exp.DataType.build(t)}
                    for n, t in ALERTS_SENT_COLUMNS
                ],
            }],
        ))
        return set()
    frame = select(engine, table, columns=["channel"], where=eq("incident_key", key))
    return set(frame["channel"].astype(str))


def _record_sent(engine: Engine, schema: str, incident: Incident, channel: str) -> None:
    row = {"incident_key": incident.key, "channel": channel, "metric": incident.metric,
           "incident_start": incident.start, "run_id": incident.run_id,
           "sent_at": datetime.now(timezone.utc).replace(tzinfo=None)}
    engine.insert_rows(_sent_table(schema), ALERTS_SENT_COLUMNS, [row])


def send_alerts(incident: Incident, settings: AlertSettings, *, engine: Engine | None = None,
                schema: str | None = None) -> list[AlertResult]:
    """Send one incident to every configured channel, once.

    With ``engine``, deliveries are recorded in ``<schema>.alerts_sent`` and an incident already
    sent to a channel is skipped (``duplicate``). Failures are returned (and logged), not raised,
    so one broken channel does not stop the other or the monitor run."""
    schema = schema or (engine.findings_schema if engine is not None else None)
    done = _already_sent(engine, schema, incident.key) if engine is not None and schema else set()
    results = []
    for channel in settings.channels:
        result = AlertResult(channel, incident.key)
        if channel in done:
            result.duplicate = True
        else:
            try:
                if channel == "webhook":
                    assert settings.webhook is not None
                    send_webhook(incident, settings.webhook, settings.report_url)
                else:
                    assert settings.email is not None
                    send_email(incident, settings.email, settings.report_url)
            except AlertError as err:
                result.error = str(err)
                log.warning("alert for incident %s not sent: %s", incident.key, err)
            else:
                result.sent = True
                if engine is not None and schema:
                    _record_sent(engine, schema, incident, channel)
        results.append(result)
    return results


def send_incidents(
    incidents: Sequence[Incident],
    settings: AlertSettings,
    *,
    engine: Engine | None = None,
    schema: str | None = None,
) -> list[AlertResult]:
    """:func:`send_alerts` for several incidents; the same incident listed twice is sent once."""
    seen: set[str] = set()
    results: list[AlertResult] = []
    for incident in incidents:
        if incident.key in seen:
            results.extend(AlertResult(c, incident.key, duplicate=True) for c in settings.channels)
            continue
        seen.add(incident.key)
        results.extend(send_alerts(incident, settings, engine=engine, schema=schema))
    return results
