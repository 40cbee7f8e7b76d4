"""The semantic layers a command names (``--dbt-project``, ``--lookml``): every project it loads
exposes their metrics too (spec.project), and without a profile of its own the dbt project's
profile is the warehouse (spec.profiles). Set per command by cli.common."""

from __future__ import annotations

import contextvars

#: (dbt project folder, LookML folder), each None when not given
SEMANTIC_LAYERS: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "rca_semantic_layers", default=(None, None))
