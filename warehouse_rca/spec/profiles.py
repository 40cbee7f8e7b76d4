"""Profiles: where the warehouse is (dbt-shaped ``profiles.yml``; secrets only through
``env_var()``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from warehouse_rca.errors import ConfigError

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

    SECRET_KEYS = ("password", "token", "private_key", "private_key_passphrase", "secret")

    @classmethod
    def is_secret_key(cls, key: str) -> bool:
        return any(s in str(key).lower() for s in cls.SECRET_KEYS)

    def redacted(self) -> dict[str, Any]:
        return {k: ("***" if self.is_secret_key(k) else v) for k, v in self.settings.items()}

    def __repr__(self) -> str:
        # The dataclass repr would print settings, password included, into any traceback or log.
        return (
            f"Target(name={self.name!r}, type={self.type!r}, settings={self.redacted()!r}, "
            f"source={self.source!r})"
        )


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


def _render_env(value: Any) -> Any:
    """Resolve ``{{ env_var('X') }}`` in every string of a parsed YAML tree, as dbt does."""
    if isinstance(value, dict):
        return {k: _render_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_env(v) for v in value]
    if isinstance(value, str) and "{{" in value:
        env = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
        try:
            return env.from_string(value).render(env_var=_env_var)
        except jinja2.TemplateError as err:
            # The template text, not a rendered value: secrets are only env_var() references.
            raise ConfigError(f"profiles.yml: cannot render {value!r}: {err}") from None
    return value


def load_target(profiles_dir: str | None = None, target: str | None = None) -> Target:
    """Find the warehouse target: ``--profiles-dir``/``WAREHOUSE_RCA_PROFILES_DIR``, then the
    working directory, then ``~/.warehouse_rca``; with no profiles.yml at all, an embedded DuckDB
    file in the working directory."""
    candidates = (
        [Path(profiles_dir)]
        if profiles_dir
        else [Path.cwd(), Path.home() / ".warehouse_rca"]
    )
    for directory in candidates:
        path = directory / "profiles.yml"
        if path.is_file():
            return _target_from_file(path, target)
    if profiles_dir:
        raise ConfigError(f"no profiles.yml in --profiles-dir {profiles_dir}")
    return Target(
        name=target or "default",
        type="duckdb",
        settings={"path": DEFAULT_DUCKDB_PATH, "schema": DEFAULT_FINDINGS_SCHEMA},
        source="(built-in default: embedded DuckDB)",
    )


def _target_from_file(path: Path, target: str | None) -> Target:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    profile = doc.get(PROFILE_NAME)
    if not isinstance(profile, dict):
        raise ConfigError(f"{path}: no profile named {PROFILE_NAME!r}")
    outputs = profile.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        raise ConfigError(f"{path}: profile {PROFILE_NAME!r} has no outputs")
    name = target or profile.get("target") or next(iter(outputs))
    if name not in outputs:
        raise ConfigError(
            f"{path}: target {name!r} is not among outputs ({', '.join(sorted(outputs))})"
        )
    _check_secrets(outputs[name], f"{path}: outputs.{name}")
    settings = _render_env(outputs[name])
    if not isinstance(settings, dict) or "type" not in settings:
        raise ConfigError(f"{path}: outputs.{name} needs a 'type' (duckdb, postgres, ...)")
    settings = dict(settings)
    kind = str(settings.pop("type")).lower()
    return Target(name=name, type=kind, settings=settings, source=str(path))
