"""warehouse-rca: automated root-cause analysis for business metrics, pushed into the warehouse.

The public Python API (``warehouse_rca.api`` explains the calls; the CLI uses the same ones). Names
load when first used, so ``import warehouse_rca`` (and ``warehouse-rca --help``) imports neither
statsmodels nor click.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "Period": "warehouse_rca.spec", "MetricSpec": "warehouse_rca.spec",
    "Project": "warehouse_rca.spec", "Target": "warehouse_rca.spec",
    "load_project": "warehouse_rca.spec", "load_target": "warehouse_rca.spec",
    "metric_from_mapping": "warehouse_rca.spec",
    "connect": "warehouse_rca.engines", "Engine": "warehouse_rca.engines.base",
    "investigate": "warehouse_rca.investigate", "Investigation": "warehouse_rca.contract",
    "InvestigationOptions": "warehouse_rca.contract",
    "run_investigation": "warehouse_rca.api", "InvestigationRun": "warehouse_rca.api",
    "monitor_project": "warehouse_rca.api", "MonitorRun": "warehouse_rca.api",
    "run_monitor": "warehouse_rca.monitor", "MonitorResult": "warehouse_rca.monitor",
    "detect": "warehouse_rca.detect", "DetectionSettings": "warehouse_rca.detect",
    "write_investigation": "warehouse_rca.findings", "load_run": "warehouse_rca.report",
    "record_feedback": "warehouse_rca.findings", "load_knowledge": "warehouse_rca.findings",
    "history": "warehouse_rca.findings",
    "build_report": "warehouse_rca.report", "write_report": "warehouse_rca.report",
    "RcaError": "warehouse_rca.errors", "ConfigError": "warehouse_rca.errors",
    "InputError": "warehouse_rca.errors", "WarehouseError": "warehouse_rca.errors",
}
__all__ = ["__version__", *sorted(str(name) for name in _EXPORTS)]  # noqa: PLE0604 (built from _EXPORTS: one list of names)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'warehouse_rca' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
