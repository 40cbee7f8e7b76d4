"""Stage 5, findings in the warehouse for BI tools: the ``runs`` and ``root_causes`` tables and
their views (:mod:`.store`), analysts' verdicts and the knowledge base they build
(:mod:`.feedback`), a metric's past incidents (:mod:`.history`).
"""

from __future__ import annotations

from warehouse_rca.findings.feedback import (
    ensure_feedback_table,
    eq,
    feedback_for_run,
    find_finding,
    load_knowledge,
    record_feedback,
    select,
    table_exists,
)
from warehouse_rca.findings.history import history
from warehouse_rca.findings.store import (
    TEST_PAUSE_ENV,
    RunAttempt,
    ensure_tables,
    fail_run,
    findings_tables,
    replace_run,
    start_run,
    write_investigation,
)

__all__ = [
    "TEST_PAUSE_ENV",
    "RunAttempt",
    "ensure_feedback_table",
    "ensure_tables",
    "eq",
    "fail_run",
    "feedback_for_run",
    "find_finding",
    "findings_tables",
    "history",
    "load_knowledge",
    "record_feedback",
    "replace_run",
    "select",
    "start_run",
    "table_exists",
    "write_investigation",
]
