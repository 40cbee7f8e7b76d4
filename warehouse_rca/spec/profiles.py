"""Profiles: where the warehouse is (dbt-shaped ``profiles.yml``; secrets only through
``env_var()``)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from warehouse_rca.errors import (
    SECRET_KEY_PARTS,
    ConfigError,
    redact,
    register_secret,
    register_url_credentials,
)
from warehouse_rca.spec.layers import SEMANTIC_LAYERS

PROFILE_NAME = "warehouse_rca"
DEFAULT_DUCKDB_PATH = "warehouse_rca.duckdb"
DEFAULT_FINDINGS_SCHEMA = "rca"


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Target:
    """One ``outputs.<name>`` entry of profiles.yml, with env_var() already resolved.

    ``secrets`` lists the keys whose values must never be printed.
    """

    name: str
    type: str
    settings: dict[str, Any]
    source: str

    #: A key containing one of these (any case) holds a credential: password, passwd, pwd,
    #: token, access_token, secret, client_secret, private_key(_passphrase), api_key.
    SECRET_KEYS = SECRET_KEY_PARTS

    @classmethod
    def is_secret_key(cls, key: str) -> bool:
        return any(s in str(key).lower() for s in cls.SECRET_KEYS)

    def redacted(self) -> dict[str, Any]:
        """The settings to show: secrets as ``***``, credentials inside URLs and connection
        strings (``user:password@``, ``;token=``) too."""
        return {k: ("***" if self.is_secret_key(k) else _redact_value(v))
                for k, v in self.settings.items()}

    def __repr__(self) -> str:
        # The dataclass repr would print settings, password included, into any traceback or log.
        return (
            f"Target(name={self.name!r}, type={self.type!r}, settings={self.redacted()!r}, "
            f"source={self.source!r})"
        )


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: ("***" if Target.is_secret_key(k) else _redact_value(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    return value


def _env_var(name: str, default: str | None = None) -> str:
    if name in os.environ:
        return os.environ[name]
    if default is not None:
        return default
    raise ConfigError(
        f"environment variable {name!r} is not set (used by env_var() in profiles.yml)"
    )


# A secret must be exactly one env_var() reference without a default: a default would be a
# literal secret again, and any other template expression could compute one.
_ENV_REFERENCE = re.compile(
    r"""^\s*\{\{\s*env_var\(\s*(['"])[A-Za-z_][A-Za-z0-9_]*\1\s*\)\s*\}\}\s*$"""
)

# The only template expression a profile or the alerts section may hold: env_var('NAME') or
# env_var('NAME', 'default'). Nothing else is evaluated (no Jinja: no range(), loops, filters or
# arithmetic that could compute a secret or run for minutes).
_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_ENV_CALL = re.compile(
    r"""^\s*env_var\(\s*(['"])([A-Za-z_][A-Za-z0-9_]*)\1\s*"""
    r"""(?:,\s*(['"])([^'"{}]*)\3\s*)?\)\s*$"""
)
def _check_secrets(settings: Any, where: str) -> None:
    """Refuse literal secrets in profiles.yml, naming the key but never echoing the value."""
    if not isinstance(settings, dict):
        return
    for key, value in settings.items():
        if isinstance(value, dict):
            _check_secrets(value, f"{where}.{key}")
        elif Target.is_secret_key(key) and value not in (None, "") and not (
            isinstance(value, str) and _ENV_REFERENCE.match(value)
        ):
            raise ConfigError(
                f"{where}.{key}: secrets must be an env_var() reference without a default, e.g. "
                f"\"{{{{ env_var('WAREHOUSE_{str(key).upper()}') }}}}\" "
                "(the value given is not shown)"
            )


def _render_env(value: Any, *, where: str = "profiles.yml", secret: bool = False) -> Any:
    """Resolve ``{{ env_var('X') }}`` (optionally ``env_var('X', 'default')``) in every string of
    a parsed YAML tree, as dbt does. Any other template syntax is refused (ConfigError naming the
    key), never evaluated. The values of secret keys are registered for redaction."""
    if isinstance(value, dict):
        return {k: _render_env(v, where=f"{where}.{k}",
                               secret=secret or Target.is_secret_key(str(k)))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_render_env(v, where=f"{where}[{i}]", secret=secret)
                for i, v in enumerate(value)]
    if isinstance(value, str):
        if "{%" in value or "{#" in value:
            raise ConfigError(f"{where}: only {{{{ env_var('NAME') }}}} references are allowed "
                              "here, not template statements or comments")

        def substitute(match: re.Match[str]) -> str:
            call = _ENV_CALL.match(match.group(1))
            if call is None:
                # The template text is shown only for non-secret keys.
                shown = "" if secret else f" in {value[:200]!r}"
                raise ConfigError(
                    f"{where}: only {{{{ env_var('NAME') }}}} or "
                    f"{{{{ env_var('NAME', 'default') }}}} may be used{shown}"
                )
            return _env_var(call.group(2), call.group(4))

        rendered = _EXPRESSION.sub(substitute, value) if "{{" in value else value
        if secret:
            register_secret(rendered)
        else:  # a URL or connection string holding a credential (sc://...;token=...)
            register_url_credentials(rendered)
        return rendered
    if secret and value is not None:
        register_secret(value)
    return value


# --------------------------------------------------------------------------- settings


#: profile keys that hold numbers: (kind, smallest, largest)
_NUMERIC_SETTINGS: dict[str, tuple[type, float, float]] = {
    "port": (int, 1, 65535),
    "retries": (int, 0, 100),
    "connect_timeout": (int, 0, 86400),
    "login_timeout": (int, 0, 86400),
    "network_timeout": (int, 0, 86400),
    "statement_timeout": (float, 0, 7 * 86400),
    "retry_delay": (float, 0, 3600),
}
_BOOLEAN_SETTINGS = ("read_only", "client_session_keep_alive")
#: profile keys that hold a memory size (PostgreSQL's units; a bare number is kB, as there)
_MEMORY_SETTINGS = ("work_mem",)
_MEMORY = re.compile(r"\s*(\d{1,12})\s*(kB|MB|GB|TB)?\s*", re.IGNORECASE)
_MEMORY_UNITS = {"kb": ("kB", 1), "mb": ("MB", 1024), "gb": ("GB", 1024**2), "tb": ("TB", 1024**3)}
#: PostgreSQL's own bounds for work_mem: 64 kB to 2 TB
_MEMORY_KB = (64, 2 * 1024**3 - 1)
_TEXT_SETTINGS = ("schema", "path", "url", "host", "user", "dbname", "database", "account",
                  "warehouse", "role", "source_schema")


def _number(value: Any, kind: type, low: float, high: float, where: str) -> int | float:
    """A profile setting as a number in [low, high] (strings such as an env_var() result too)."""
    what = "a whole number" if kind is int else "a number"
    problem = f"{where}: must be {what} from {low:g} to {high:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{problem}, not {type(value).__name__}")
    try:
        number = float(str(value).strip()) if kind is float else _whole(value)
    except ValueError:
        raise ConfigError(f"{problem}, not {str(value)[:40]!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ConfigError(f"{problem}, not {str(value)[:40]!r}")
    return number


def _whole(value: Any) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return int(str(value).strip())


def _memory(value: Any, where: str) -> str:
    """A memory size as PostgreSQL writes it (``256MB``; a bare number is kB): checked here, so
    the text passed to the server as ``-c work_mem=...`` holds a number and a unit, nothing else."""
    low, high = _MEMORY_KB
    problem = f"{where}: must be a memory size such as 256MB (kB, MB, GB or TB) from 64kB to 2TB"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{problem}, not {type(value).__name__}")
    match = _MEMORY.fullmatch(str(value))
    if match is None:
        raise ConfigError(f"{problem}, not {str(value)[:40]!r}")
    unit, factor = _MEMORY_UNITS[(match.group(2) or "kB").lower()]
    if not low <= int(match.group(1)) * factor <= high:
        raise ConfigError(f"{problem}, not {str(value)[:40]!r}")
    return f"{int(match.group(1))}{unit}"


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0", ""):
        return False
    raise ConfigError(f"{where}: must be true or false, not {str(value)[:40]!r}")


def _check_settings(settings: dict[str, Any], where: str) -> dict[str, Any]:
    """Types of the settings the engines read, checked (and numbers parsed) before an engine
    sees them, so ``port: abc`` is a message naming the key (exit 2), not a traceback."""
    out = dict(settings)
    for key, (kind, low, high) in _NUMERIC_SETTINGS.items():
        if out.get(key) is not None:
            out[key] = _number(out[key], kind, low, high, f"{where}.{key}")
    for key in _BOOLEAN_SETTINGS:
        if out.get(key) is not None:
            out[key] = _boolean(out[key], f"{where}.{key}")
    for key in _MEMORY_SETTINGS:
        if out.get(key) is not None:
            out[key] = _memory(out[key], f"{where}.{key}")
    for key in _TEXT_SETTINGS:
        value = out.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}.{key}: must be a string, not {type(value).__name__}")
        if key == "schema" and not str(value).strip():
            raise ConfigError(f"{where}.{key}: must be a non-empty schema name")
        if any(ord(c) < 32 or ord(c) == 127 for c in str(value)):
            raise ConfigError(f"{where}.{key}: must not contain control characters")
        out[key] = str(value)
    if out.get("session_parameters") is not None and not isinstance(
            out["session_parameters"], dict):
        raise ConfigError(f"{where}.session_parameters: must be a mapping")
    return out


def load_target(profiles_dir: str | None = None, target: str | None = None) -> Target:
    """Find the warehouse target: ``--profiles-dir``/``WAREHOUSE_RCA_PROFILES_DIR``, then the
    working directory, then ``~/.warehouse_rca``; with no profiles.yml at all, an embedded DuckDB
    file in the working directory."""
    candidates = (
        [Path(profiles_dir)]
        if profiles_dir
        else [Path.cwd(), Path.home() / ".warehouse_rca"]
    )
    dbt_project = SEMANTIC_LAYERS.get()[0]
    for directory in candidates:
        path = directory / "profiles.yml"
        # beside a dbt project, a profiles.yml of dbt's own is not ours to refuse
        if path.is_file() and (profiles_dir or dbt_project is None
                               or _has_profile(path, PROFILE_NAME)):
            return _target_from_file(path, target)
    if profiles_dir:
        raise ConfigError(f"no profiles.yml in --profiles-dir {profiles_dir}")
    if dbt_project is not None:  # no profile of our own: the dbt project's profile and target
        found = dbt_target(Path(dbt_project), target)
        if found is not None:
            return found
    return Target(
        name=target or "default",
        type="duckdb",
        settings={"path": DEFAULT_DUCKDB_PATH, "schema": DEFAULT_FINDINGS_SCHEMA},
        source="(built-in default: embedded DuckDB)",
    )


def _has_profile(path: Path, name: str) -> bool:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return True  # let _target_from_file say what is wrong with it
    return isinstance(doc, dict) and name in doc


#: dbt's connection keys that are not ours (the adapter's own tuning): dropped on reuse
_DBT_ONLY = ("threads", "keepalives_idle", "connect_timeout_seconds", "retries", "search_path",
             "sslmode", "extensions", "settings", "plugins", "attach", "filesystems")


def dbt_target(project_dir: Path, target: str | None) -> Target | None:
    """The dbt project's own target (its ``profile:`` in ``DBT_PROFILES_DIR``, the project
    folder or ``~/.dbt``), as a warehouse-rca target. dbt's ``schema`` is where dbt builds
    models; findings go to the default findings schema instead (or the project's)."""
    config = project_dir / "dbt_project.yml"
    doc = yaml.safe_load(config.read_text(encoding="utf-8")) if config.is_file() else None
    name = doc.get("profile") if isinstance(doc, dict) else None
    if not isinstance(name, str):
        return None
    folders = [Path(os.environ["DBT_PROFILES_DIR"])] if os.environ.get("DBT_PROFILES_DIR") \
        else []
    for folder in [*folders, project_dir, Path.home() / ".dbt"]:
        path = folder / "profiles.yml"
        if path.is_file() and _has_profile(path, name):
            found = _target_from_file(path, target, profile_name=name)
            settings = {k: v for k, v in found.settings.items() if k not in _DBT_ONLY}
            settings["schema"] = DEFAULT_FINDINGS_SCHEMA
            return Target(name=found.name, type=found.type, settings=settings,
                          source=f"{path} (dbt profile {name!r})")
    return None


def _target_from_file(path: Path, target: str | None,
                      profile_name: str = PROFILE_NAME) -> Target:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    profile = doc.get(profile_name) if isinstance(doc, dict) else None
    if not isinstance(profile, dict):
        raise ConfigError(f"{path}: no profile named {profile_name!r}")
    outputs = profile.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        raise ConfigError(f"{path}: profile {profile_name!r} has no outputs")
    name = target or profile.get("target") or next(iter(outputs))
    if not isinstance(name, str) or name not in outputs:
        raise ConfigError(
            f"{path}: target {name!r} is not among outputs ({', '.join(sorted(outputs))})"
        )
    _check_secrets(outputs[name], f"{path}: outputs.{name}")
    settings = _render_env(outputs[name], where=f"{path}: outputs.{name}")
    if not isinstance(settings, dict) or "type" not in settings:
        raise ConfigError(f"{path}: outputs.{name} needs a 'type' (duckdb, postgres, ...)")
    settings = dict(settings)
    kind = settings.pop("type")
    if not isinstance(kind, str):
        raise ConfigError(f"{path}: outputs.{name}.type: must be a string (duckdb, postgres, ...)")
    settings = _check_settings(settings, f"{path}: outputs.{name}")
    return Target(name=name, type=kind.lower(), settings=settings, source=str(path))
