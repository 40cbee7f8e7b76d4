"""Alert settings of the project file (``alerts:``): webhook, email, report link.

Everything is checked when the settings are read (before a monitor run writes anything): a wrong
timeout, port, URL or address is a :class:`ConfigError` (exit 2) naming the file and the key, never
a traceback at send time. URLs must be http(s); addresses and hosts may not hold line breaks or
other control characters (no header injection); the webhook URL's path (a Slack URL's token) is
registered for redaction and never printed.
"""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import yaml

from warehouse_rca.errors import ConfigError, register_secret
from warehouse_rca.spec.profiles import _check_secrets, _render_env

#: Longest delivery timeout accepted (seconds); a claimed alert is retried after much longer.
MAX_TIMEOUT = 300.0

_WEBHOOK_KEYS = {"url", "timeout"}
_EMAIL_KEYS = {"smtp_host", "smtp_port", "starttls", "username", "password", "from", "to",
               "timeout"}


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    timeout: float = 10.0

    def __repr__(self) -> str:  # never print the path: a Slack URL's path is its token
        parts = urllib.parse.urlsplit(self.url)
        return f"WebhookSettings(url='{parts.scheme}://{host_of(self.url)}/***', " \
               f"timeout={self.timeout})"


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


def host_of(url: str) -> str:
    """The host (and port) of a URL, without credentials or path: what messages may show."""
    try:
        return urllib.parse.urlsplit(url).netloc.rsplit("@", 1)[-1] or "(no host)"
    except ValueError:
        return "(invalid URL)"


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029" for c in text)


def check_http_url(value: Any, where: str) -> str:
    """An absolute http(s) URL with a host, no spaces or control characters, a valid port.
    The message names the key, never the URL (it may hold a token)."""
    hint = f"{where}: needs an http(s) URL such as https://host/path"
    if not isinstance(value, str) or not value:
        raise ConfigError(hint)
    if _has_control(value) or any(c.isspace() for c in value):
        raise ConfigError(f"{hint} (the value holds spaces or control characters; not shown)")
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{hint} (the value is not a valid URL; not shown)") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{hint} (other schemes, e.g. javascript:, are refused)")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"{where}: port {port} is out of range (1-65535)")
    return value


def _timeout(value: Any, where: str) -> float:
    problem = f"{where}: must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(problem)
    try:
        seconds = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{problem}, not {str(value)[:40]!r}") from None
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT:
        raise ConfigError(f"{problem}, not {str(value)[:40]!r}")
    return seconds


def _port(value: Any, where: str) -> int:
    problem = f"{where}: must be a port number (1-65535)"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(problem)
    try:
        port = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{problem}, not {str(value)[:40]!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{problem}, not {port}")
    return port


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"{where}: must be true or false")


def _text(value: Any, where: str, *, spaces: bool = True) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be a non-empty string")
    if _has_control(value) or (not spaces and any(c.isspace() for c in value)):
        raise ConfigError(
            f"{where}: must not contain line breaks or control characters"
            + ("" if spaces else " or spaces")
        )
    return value.strip()


def _address(value: Any, where: str) -> str:
    """One mail address (``a@x.io`` or ``Name <a@x.io>``): no line breaks (no header injection),
    exactly one address."""
    text = _text(value, where)
    parsed = getaddresses([text])
    if len(parsed) != 1 or "@" not in parsed[0][1] or any(c.isspace() for c in parsed[0][1]):
        raise ConfigError(f"{where}: {text[:80]!r} is not one mail address")
    return text


def _unknown(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(map(str, raw)) - allowed
    if unknown:
        raise ConfigError(f"{where}, key {min(unknown)!r}: unknown key "
                          f"(allowed: {', '.join(sorted(allowed))})")


def settings_from_mapping(raw: Any, origin: str) -> AlertSettings:
    """Validate the project's ``alerts:`` entry; errors name the file and the key."""
    if raw is None:
        return AlertSettings()
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: 'alerts' must be a mapping (webhook, email, report_url)")
    _unknown(raw, {"webhook", "email", "report_url"}, f"{origin}: alerts")
    _check_secrets(raw, f"{origin}: alerts")
    raw = _render_env(raw, where=f"{origin}: alerts")
    webhook = email = None
    if raw.get("webhook") is not None:
        hook = raw["webhook"]
        where = f"{origin}: alerts.webhook"
        if not isinstance(hook, dict):
            raise ConfigError(f"{where}: must be a mapping (url, timeout)")
        _unknown(hook, _WEBHOOK_KEYS, where)
        try:
            url = check_http_url(hook.get("url"), f"{where}.url")
        except ConfigError as err:
            raise ConfigError(
                f"{err} (a Slack URL holds a token: use \"{{{{ env_var('RCA_SLACK_WEBHOOK') }}}}\")"
            ) from None
        parts = urllib.parse.urlsplit(url)
        secret_part = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(secret_part) >= 8:  # the token of a Slack (or similar) webhook URL
            register_secret(secret_part)
            register_secret(url)
        webhook = WebhookSettings(url=url, timeout=_timeout(hook.get("timeout", 10),
                                                            f"{where}.timeout"))
    if raw.get("email") is not None:
        mail = raw["email"]
        where = f"{origin}: alerts.email"
        if not isinstance(mail, dict):
            raise ConfigError(f"{where} must be a mapping")
        _unknown(mail, _EMAIL_KEYS, where)
        for key in ("smtp_host", "from", "to"):
            if not mail.get(key):
                raise ConfigError(f"{where}.{key}: missing")
        to = mail["to"]
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to:
            raise ConfigError(f"{where}.to: one address or a list of addresses")
        recipients = tuple(_address(r, f"{where}.to") for r in to)
        username = mail.get("username")
        password = mail.get("password")
        if password is not None and not isinstance(password, str):
            raise ConfigError(f"{where}.password: must be an env_var() reference")
        email = EmailSettings(
            smtp_host=_text(mail["smtp_host"], f"{where}.smtp_host", spaces=False),
            smtp_port=_port(mail.get("smtp_port", 25), f"{where}.smtp_port"),
            sender=_address(mail["from"], f"{where}.from"),
            recipients=recipients,
            starttls=_flag(mail.get("starttls", False), f"{where}.starttls"),
            username=_text(username, f"{where}.username") if username is not None else None,
            password=password or None,
            timeout=_timeout(mail.get("timeout", 10), f"{where}.timeout"),
        )
    report_url = raw.get("report_url")
    if report_url is not None:
        report_url = check_http_url(report_url, f"{origin}: alerts.report_url")
    return AlertSettings(webhook=webhook, email=email, report_url=report_url)


def load_alert_settings(project_path: str | Path) -> AlertSettings:
    """The ``alerts:`` section of a project file (empty settings when it has none)."""
    path = Path(project_path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read alert settings: {err}") from None
    return settings_from_mapping(doc.get("alerts") if isinstance(doc, dict) else None, str(path))
