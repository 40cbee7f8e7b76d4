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

Concurrent schedules send an incident once: before sending, a run *claims* the incident and
channel by appending a row to ``alert_claims`` inside a transaction that holds the engine's lock
for that key (a PostgreSQL advisory lock; in one process, also a thread lock) after checking that
it is neither sent nor claimed. It then reads the claims again, in a fresh snapshot, and gives way
if another live claim exists (so engines without a lock still never send twice; at worst both
give way and the next run sends). A failed delivery releases its claim (retried by the next run);
a claim neither released nor followed by an ``alerts_sent`` row (the process died between claim
and send, or between send and record) expires after :data:`CLAIM_TIMEOUT` and a later run sends
the alert then: at least once, never lost.

Text from the data (metric names, segment values, summaries) is escaped for the channel: Slack
``mrkdwn`` gets ``&``, ``<`` and ``>`` as entities (no ``<!channel>``, ``<@U123>`` or
``<http://evil|click>`` from a segment value), email is plain text whose headers hold no line
breaks; control characters are removed from both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import smtplib
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

import pandas as pd
from sqlglot import exp

from warehouse_rca import narrative, sql
from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError, RcaError, WarehouseError, redact
from warehouse_rca.findings.feedback import eq, select, table_exists
from warehouse_rca.findings.store import _lock_key
from warehouse_rca.spec.alerts import (
    AlertSettings,
    EmailSettings,
    WebhookSettings,
    check_http_url,
    host_of,
)

log = logging.getLogger("warehouse_rca.alerts")

ALERTS_SENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("incident_key", "VARCHAR"),
    ("channel", "VARCHAR"),
    ("metric", "VARCHAR"),
    ("incident_start", "TIMESTAMP"),
    ("run_id", "VARCHAR"),
    ("sent_at", "TIMESTAMP"),
)

#: One row per claim of an incident's delivery to a channel, and one per release of a claim
#: (append-only: every engine can write it, plain Spark tables included).
ALERT_CLAIMS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("incident_key", "VARCHAR"),
    ("channel", "VARCHAR"),
    ("claim_id", "VARCHAR"),
    ("status", "VARCHAR"),  # 'claimed' or 'released'
    ("run_id", "VARCHAR"),
    ("claimed_at", "TIMESTAMP"),
)

#: A claim neither released nor followed by an ``alerts_sent`` row after this long belongs to a
#: run that died: a later run sends the alert (far above any delivery timeout, at most 300 s).
CLAIM_TIMEOUT = timedelta(minutes=15)

CLAIMED = "claimed"
RELEASED = "released"

# Claims of one process take turns (threads sharing an embedded DuckDB file, where the engine
# lock is a no-op and snapshots would hide each other's claims).
_PROCESS_LOCK = threading.RLock()


# --------------------------------------------------------------------------- escaping

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def plain(text: Any) -> str:
    """Text from the data without control characters (terminal escapes, NUL); newlines kept."""
    return _CONTROL.sub("", str(text))


def one_line(text: Any) -> str:
    """A header-safe line: no CR/LF or other control characters."""
    return " ".join(_CONTROL.sub(" ", str(text).replace("\r", " ").replace("\n", " ")).split())


def slack_escape(text: Any) -> str:
    """Text for Slack ``mrkdwn``/``text``: ``&``, ``<``, ``>`` as entities, so nothing from the
    data becomes a mention (``<!channel>``, ``<@U123>``) or a link (``<http://x|click>``)."""
    return plain(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")



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


def _report_url(report_url: str | None) -> str | None:
    if not report_url:
        return None
    try:  # settings are checked when read; an AlertSettings built in code is checked here
        return check_http_url(report_url, "alerts.report_url")
    except ConfigError:
        log.warning("alerts.report_url is not an http(s) URL: left out of the alert")
        return None


def slack_payload(incident: Incident, report_url: str | None = None) -> dict[str, Any]:
    """Slack-compatible JSON: ``text`` (fallback, works on any webhook) plus ``blocks``. Every
    text from the data is escaped (see :func:`slack_escape`)."""
    title = slack_escape(one_line(incident.title()))
    lines = [slack_escape(line) for line in incident.lines()]
    link = _report_url(report_url)
    if link:
        lines.append(f"Report: {slack_escape(link)}")
    text = f"{title}\n" + "\n".join(lines)
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
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
        # Data for other JSON endpoints (raw values, JSON-encoded; Slack ignores the key).
        "incident": {
            "key": incident.key, "metric": plain(incident.metric),
            "start": incident.start.isoformat(), "end": incident.end.isoformat(),
            "direction": incident.direction, "run_id": incident.run_id,
        },
    }


def send_webhook(
    incident: Incident, settings: WebhookSettings, report_url: str | None = None
) -> None:
    """POST the incident as JSON; raises :class:`AlertError` on a non-2xx answer or no answer.
    Messages name the host, never the path (a Slack URL's path is its token)."""
    host = host_of(settings.url)
    try:
        check_http_url(settings.url, "alerts.webhook.url")
    except ConfigError:
        raise AlertError(f"webhook at {host}: the URL is not a valid http(s) URL") from None
    body = json.dumps(slack_payload(incident, report_url)).encode()
    request = urllib.request.Request(
        settings.url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "warehouse-rca"},
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        raise AlertError(f"webhook at {host} answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise AlertError(f"webhook at {host} unreachable: {redact(str(reason))}") from None
    except (ValueError, OverflowError) as err:  # http.client.InvalidURL and kin: never the URL
        raise AlertError(f"webhook at {host}: invalid request ({type(err).__name__})") from None
    if not 200 <= status < 300:
        raise AlertError(f"webhook at {host} answered HTTP {status}")


def email_message(
    incident: Incident, settings: EmailSettings, report_url: str | None = None
) -> EmailMessage:
    """A plain-text message; headers hold no line breaks (the subject comes from the data, the
    addresses from checked settings)."""
    message = EmailMessage()
    message["Subject"] = one_line(f"[warehouse-rca] {incident.title()}")[:900]
    message["From"] = one_line(settings.sender)
    message["To"] = ", ".join(one_line(r) for r in settings.recipients)
    message["X-Warehouse-RCA-Incident"] = incident.key
    link = _report_url(report_url)
    lines = [plain(line) for line in incident.lines()] + ([f"Report: {link}"] if link else [])
    message.set_content(plain(incident.title()) + "\n\n" + "\n".join(lines) + "\n")
    return message


def send_email(incident: Incident, settings: EmailSettings, report_url: str | None = None) -> None:
    """Send the incident by SMTP; raises :class:`AlertError` with the server's refusal."""
    where = f"{one_line(settings.smtp_host)}:{settings.smtp_port}"
    try:
        message = email_message(incident, settings, report_url)
    except (ValueError, TypeError) as err:  # a header the email package refuses
        raise AlertError(f"cannot build the alert email: {err}") from None
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            smtp.send_message(message)
    except smtplib.SMTPException as err:
        raise AlertError(f"SMTP server {where} refused the alert: {redact(str(err))}") from None
    except OSError as err:
        raise AlertError(f"SMTP server {where} unreachable: {redact(str(err))}") from None
    except (ValueError, OverflowError, UnicodeError) as err:  # a bad port or host name
        raise AlertError(f"SMTP server {where}: {type(err).__name__}: {redact(str(err))}") \
            from None


class AlertError(ConfigError):
    """A delivery failed (exit code 2: the alert configuration or its endpoint is wrong)."""


@dataclass
class AlertResult:
    channel: str
    incident_key: str
    sent: bool = False
    duplicate: bool = False
    error: str | None = None


# --------------------------------------------------------------------------- once per incident


def _sent_table(schema: str) -> exp.Table:
    return exp.Table(this=sql.identifier("alerts_sent"), db=sql.identifier(schema))


def _claims_table(schema: str) -> exp.Table:
    return exp.Table(this=sql.identifier("alert_claims"), db=sql.identifier(schema))


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _ensure_tables(engine: Engine, schema: str) -> None:
    """Create ``alerts_sent`` and ``alert_claims`` when missing (probed first: no DDL when both
    exist; otherwise under the schema's DDL lock, as concurrent CREATE ... IF NOT EXISTS races)."""
    tables = [(_sent_table(schema), ALERTS_SENT_COLUMNS),
              (_claims_table(schema), ALERT_CLAIMS_COLUMNS)]
    missing = [(t, c) for t, c in tables if not table_exists(engine, t)]
    if not missing:
        return
    for attempt in range(3):
        try:
            with engine.transaction():
                engine.lock(_lock_key("alerts-ddl", schema))
                engine.execute_all(sql.template(
                    "findings_ddl.sql.j2", schema=sql.identifier(schema), partition_by=None,
                    tables=[{"name": t, "columns": [
                        {"name": sql.identifier(n), "type": exp.DataType.build(k)} for n, k in c
                    ]} for t, c in missing],
                ))
            return
        except WarehouseError:
            # Another schedule created them at the same moment: probe again.
            missing = [(t, c) for t, c in tables if not table_exists(engine, t)]
            if not missing:
                return
            if attempt == 2:
                raise
            time.sleep(0.2 * (attempt + 1))


def _is_sent(engine: Engine, schema: str, key: str, channel: str) -> bool:
    frame = select(engine, _sent_table(schema), columns=["channel"],
                   where=exp.and_(eq("incident_key", key), eq("channel", channel)))
    return not frame.empty


def _live_claims(engine: Engine, schema: str, key: str, channel: str,
                 timeout: timedelta) -> set[str]:
    """Claim ids of the incident and channel neither released nor expired."""
    frame = select(engine, _claims_table(schema), columns=["claim_id", "status", "claimed_at"],
                   where=exp.and_(eq("incident_key", key), eq("channel", channel)))
    if frame.empty:
        return set()
    released = set(frame.loc[frame["status"] == RELEASED, "claim_id"].astype(str))
    oldest = pd.Timestamp(_now() - timeout)
    live = frame[(frame["status"] == CLAIMED) & (pd.to_datetime(frame["claimed_at"]) > oldest)]
    return set(live["claim_id"].astype(str)) - released


def _claim_row(incident: Incident, channel: str, claim_id: str, status: str) -> dict[str, Any]:
    return {"incident_key": incident.key, "channel": channel, "claim_id": claim_id,
            "status": status, "run_id": incident.run_id, "claimed_at": _now()}


@contextmanager
def _claim(engine: Engine, schema: str, incident: Incident, channel: str,
           timeout: timedelta) -> Iterator[str | None]:
    """Claim the delivery of ``incident`` to ``channel``: yields the claim id, or None when the
    incident was already sent or another run holds a live claim. The block sends; it raises to
    release the claim (the next run retries) and returns normally once the delivery is recorded.
    Any other exception (the process dies, the record cannot be written after a send) leaves the
    claim to expire: the alert is then sent again after CLAIM_TIMEOUT, never lost."""
    claim_id = uuid.uuid4().hex
    with _PROCESS_LOCK:
        with engine.transaction():
            engine.lock(_lock_key("alert", schema, incident.key, channel))
            if _is_sent(engine, schema, incident.key, channel) or _live_claims(
                    engine, schema, incident.key, channel, timeout):
                claimed = False
            else:
                engine.insert_rows(_claims_table(schema), ALERT_CLAIMS_COLUMNS,
                                   [_claim_row(incident, channel, claim_id, CLAIMED)])
                claimed = True
        # A fresh read after the commit: where the engine has no lock, a concurrent claimer's
        # row is visible to at least one of the two, which gives way.
        if claimed and (_is_sent(engine, schema, incident.key, channel) or _live_claims(
                engine, schema, incident.key, channel, timeout) - {claim_id}):
            _release(engine, schema, incident, channel, claim_id)
            claimed = False
    if not claimed:
        yield None
        return
    try:
        yield claim_id
    except AlertError:
        _release(engine, schema, incident, channel, claim_id)
        raise


def _release(engine: Engine, schema: str, incident: Incident, channel: str,
             claim_id: str) -> None:
    try:
        engine.insert_rows(_claims_table(schema), ALERT_CLAIMS_COLUMNS,
                           [_claim_row(incident, channel, claim_id, RELEASED)])
    except RcaError as err:  # the claim then expires after CLAIM_TIMEOUT
        log.warning("could not release the alert claim of incident %s: %s", incident.key, err)


def _record_sent(engine: Engine, schema: str, incident: Incident, channel: str) -> None:
    row = {"incident_key": incident.key, "channel": channel, "metric": incident.metric,
           "incident_start": incident.start, "run_id": incident.run_id, "sent_at": _now()}
    engine.insert_rows(_sent_table(schema), ALERTS_SENT_COLUMNS, [row])


def _deliver(incident: Incident, settings: AlertSettings, channel: str) -> None:
    if channel == "webhook":
        assert settings.webhook is not None
        send_webhook(incident, settings.webhook, settings.report_url)
    else:
        assert settings.email is not None
        send_email(incident, settings.email, settings.report_url)


def send_alerts(incident: Incident, settings: AlertSettings, *, engine: Engine | None = None,
                schema: str | None = None,
                claim_timeout: timedelta = CLAIM_TIMEOUT) -> list[AlertResult]:
    """Send one incident to every configured channel, once.

    With ``engine``, each delivery is claimed first and recorded in ``<schema>.alerts_sent``; an
    incident already sent to a channel, or being sent by a concurrent run, is skipped
    (``duplicate``). Failures are returned (and logged), not raised, so one broken channel does
    not stop the other or the monitor run."""
    schema = schema or (engine.findings_schema if engine is not None else None)
    if engine is not None and schema:
        _ensure_tables(engine, schema)
    results = []
    for channel in settings.channels:
        result = AlertResult(channel, incident.key)
        try:
            if engine is None or not schema:
                _deliver(incident, settings, channel)
                result.sent = True
            else:
                with _claim(engine, schema, incident, channel, claim_timeout) as claim_id:
                    if claim_id is None:
                        result.duplicate = True
                    else:
                        _deliver(incident, settings, channel)
                        result.sent = True
                        _record_sent(engine, schema, incident, channel)
        except AlertError as err:
            result.error = str(err)
            log.warning("alert for incident %s not sent: %s", incident.key, err)
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
