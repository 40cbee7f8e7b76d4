"""Errors a user can act on. Each carries a message that names what is wrong and where.

The CLI turns any ``RcaError`` into a one-line message and a non-zero exit code
(see ``EXIT_CODES`` in :mod:`warehouse_rca.cli`); anything else is a bug and keeps its traceback.

Every message is passed through :func:`redact` when it is turned into text, so a credential that
reached one (a URL with ``user:password@`` or ``;token=``, a webhook's path, a value registered
with :func:`register_secret`) prints as ``***``.
"""

from __future__ import annotations

import re
import threading

#: Setting names whose values are credentials (a key *containing* one of these is secret).
SECRET_KEY_PARTS = (
    "password", "passwd", "pwd", "token", "secret", "private_key", "private_key_passphrase",
    "api_key", "apikey", "access_token", "client_secret",
)

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()

_KEYS = "|".join(sorted({re.escape(k) for k in SECRET_KEY_PARTS}, key=len, reverse=True))
# scheme://user:password@host -> scheme://***@host (also a user alone: often a token)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'\"<>]+@")
_USERINFO_PARTS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/\s@'\"<>]+)@")
# ;token=... ?api_key=... &password=... key: value pairs in connection strings and URLs
_KEY_VALUE = re.compile(
    rf"(?i)((?:[;?&]|\b)[A-Za-z_\-]*(?:{_KEYS})[A-Za-z_\-]*\s*=\s*)[^;&\s'\"<>,)]+"
)
# the path of well-known webhook hosts holds the token
_WEBHOOK_PATH = re.compile(
    r"(?i)\b(https?://(?:hooks\.slack\.com|[a-z0-9.\-]*webhook[a-z0-9.\-]*|discord(?:app)?\.com"
    r"|[a-z0-9.\-]*\.office\.com|[a-z0-9.\-]*\.logic\.azure\.com)(?::\d+)?)/[^\s'\"<>]*"
)


def register_secret(value: object) -> None:
    """Remember a credential's value so that :func:`redact` hides it wherever it appears."""
    text = str(value or "")
    if len(text) < 6:  # a short "secret" would redact ordinary words in every message
        return
    with _SECRETS_LOCK:
        _SECRETS.add(text)


def register_url_credentials(text: str) -> None:
    """Register the credentials a URL or connection string holds (``user:password@``,
    ``;token=...``), so they stay hidden however a driver's error message spells the URL."""
    if "=" not in text and "@" not in text:
        return
    for match in _USERINFO_PARTS.finditer(text):
        register_secret(match.group(2))
        register_secret(match.group(2).partition(":")[2])
    for match in _KEY_VALUE.finditer(text):
        register_secret(text[match.end(1):match.end()])


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-shaped part of a URL or
    connection string replaced by ``***``."""
    if not text:
        return text
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    text = _USERINFO.sub(r"\1***@", text)
    text = _KEY_VALUE.sub(r"\1***", text)
    return _WEBHOOK_PATH.sub(r"\1/***", text)


class RcaError(Exception):
    """Base class for errors caused by input, configuration or the warehouse."""

    exit_code = 2

    def __str__(self) -> str:
        return redact(super().__str__())


class ConfigError(RcaError):
    """A profile, project file or command-line option is invalid."""


class InputError(RcaError):
    """The data asked for cannot support the analysis (unknown column, empty period, ...)."""


class InsufficientHistoryError(InputError):
    """A time series is too short for the requested detection."""


class WarehouseError(RcaError):
    """The warehouse refused or failed a statement."""

    exit_code = 3
