"""Engines by profile ``type``. A new warehouse is one module with a subclass of ``Engine``."""

from __future__ import annotations

import importlib

from warehouse_rca.engines.base import Engine
from warehouse_rca.errors import ConfigError
from warehouse_rca.spec.profiles import Target

#: profile type -> (module, class). Modules import their driver lazily, so extras stay optional.
ENGINES: dict[str, tuple[str, str]] = {
    "duckdb": ("warehouse_rca.engines.duckdb", "DuckDBEngine"),
    "postgres": ("warehouse_rca.engines.postgres", "PostgresEngine"),
    "postgresql": ("warehouse_rca.engines.postgres", "PostgresEngine"),
    "snowflake": ("warehouse_rca.engines.snowflake", "SnowflakeEngine"),
    "spark": ("warehouse_rca.engines.spark", "SparkEngine"),
    "databricks": ("warehouse_rca.engines.spark", "DatabricksEngine"),
}

#: profile type -> the pip extra that installs its driver.
EXTRAS: dict[str, str] = {"postgresql": "postgres", "databricks": "spark"}


def connect(target: Target, *, read_only: bool = False) -> Engine:
    """Open the engine for a profile target; ``read_only`` when the caller writes nothing (the
    engine then opens a read-only session where the warehouse offers one)."""
    if target.type not in ENGINES:
        raise ConfigError(
            f"{target.source}: target {target.name!r} has type {target.type!r}; "
            f"supported: {', '.join(sorted(ENGINES))}"
        )
    module_name, class_name = ENGINES[target.type]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"the {target.type} engine needs an extra: "
            f"pip install 'warehouse-rca[{EXTRAS.get(target.type, target.type)}]' ({err})"
        ) from None
    return getattr(module, class_name)(target, read_only=read_only)


__all__ = ["ENGINES", "Engine", "connect"]
