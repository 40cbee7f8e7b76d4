"""Alert settings of the project file (``alerts:``): webhook, email, report link."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.profiles import _check_secrets, _render_env


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    timeout: float = 10.0


@dataclass(frozen=True)
class EmailSettings:
    smtp_host: str
    sender: str
    recipients: tuple[str, ...]
    smtp_port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0

    def __repr__(self) -> str:  # never print the password
        return (
            f"EmailSettings(smtp_host={self.smtp_host!r}, smtp_port={self.smtp_port}, "
            f"sender={self.sender!r}, recipients={self.recipients!r}, starttls={self.starttls})"
        )


@dataclass(frozen=True)
class AlertSettings:
    webhook: WebhookSettings | None = None
    email: EmailSettings | None = None
    report_url: str | None = None

    @property
    def channels(self) -> list[str]:
        return [name for name in ("webhook", "email") if getattr(self, name) is not None]


def settings_from_mapping(raw: Any, origin: str) -> AlertSettings:
    """Validate the project's ``alerts:`` entry; errors name the file and the key."""
    if raw is None:
        return AlertSettings()
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: 'alerts' must be a mapping (webhook, email, report_url)")
    unknown = set(raw) - {"webhook", "email", "report_url"}
    if unknown:
        raise ConfigError(
            f"{origin}: alerts, key {min(unknown)!r}: unknown key "
            "(allowed: email, report_url, webhook)"
        )
    _check_secrets(raw, f"{origin}: alerts")
    raw = _render_env(raw)
    webhook = email = None
    if raw.get("webhook") is not None:
        hook = raw["webhook"]
        if (
            not isinstance(hook, dict)
            or not isinstance(hook.get("url"), str)
            or not hook["url"].startswith(("http://", "https://"))
        ):
            raise ConfigError(
                f"{origin}: alerts.webhook.url: needs an http(s) URL "
                "(a Slack URL holds a token: use \"{{ env_var('RCA_SLACK_WEBHOOK') }}\")"
            )
        webhook = WebhookSettings(url=hook["url"], timeout=float(hook.get("timeout", 10)))
    if raw.get("email") is not None:
        mail = raw["email"]
        if not isinstance(mail, dict):
            raise ConfigError(f"{origin}: alerts.email must be a mapping")
        for key in ("smtp_host", "from", "to"):
            if not mail.get(key):
                raise ConfigError(f"{origin}: alerts.email.{key}: missing")
        to = mail["to"]
        recipients = tuple([to] if isinstance(to, str) else to)
        if not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
            raise ConfigError(f"{origin}: alerts.email.to: one address or a list of addresses")
        try:
            port = int(mail.get("smtp_port", 25))
        except (TypeError, ValueError):
            raise ConfigError(f"{origin}: alerts.email.smtp_port: must be a port number") from None
        email = EmailSettings(
            smtp_host=str(mail["smtp_host"]), smtp_port=port, sender=str(mail["from"]),
            recipients=recipients, starttls=bool(mail.get("starttls", False)),
            username=mail.get("username"), password=mail.get("password") or None,
            timeout=float(mail.get("timeout", 10)),
        )
    return AlertSettings(webhook=webhook, email=email, report_url=raw.get("report_url"))


def load_alert_settings(project_path: str | Path) -> AlertSettings:
    """The ``alerts:`` section of a project file (empty settings when it has none)."""
    path = Path(project_path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read alert settings: {err}") from None
    return settings_from_mapping(doc.get("alerts") if isinstance(doc, dict) else None, str(path))
