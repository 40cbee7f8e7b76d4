"""`warehouse-rca metrics`: what a project, a dbt project or a LookML folder exposes, with how
each metric maps (or why it does not)."""

from __future__ import annotations

import json
from typing import Any

import click

from warehouse_rca.cli.common import _handle_errors, _semantic_options
from warehouse_rca.cli.terminal import echo
from warehouse_rca.spec.project import load_project


@click.command("metrics")
@click.option("--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False),
              help="Project file (default: ./warehouse_rca.yml when it exists).")
@_semantic_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@_handle_errors
def metrics_command(project: str | None, fmt: str) -> None:
    """List the metrics the project, --dbt-project and --lookml expose, with their mapping."""
    loaded = load_project(project)
    rows: list[dict[str, Any]] = []
    for name, spec in sorted(loaded.metrics.items()):
        rows.append({
            "metric": name, "mapped": True, "kind": spec.kind, "origin": spec.origin,
            "how": loaded.notes.get(name, "project file"),
            "measure": spec.measure, "numerator": spec.numerator,
            "denominator": spec.denominator, "filters": list(spec.filters),
            "time_column": spec.time_column, "grain": spec.grain,
            "dimensions": list(spec.dimensions), "source": spec.table or "(SELECT)",
        })
    for name, why in sorted(loaded.not_mapped.items()):
        rows.append({"metric": name, "mapped": False, "why": why})
    if fmt == "json":
        echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        if not row["mapped"]:
            echo(f"- {row['metric']}: not mapped, because {row['why']}")
            continue
        what = (row["measure"] if row["kind"] == "additive"
                else f"{row['numerator']} / {row['denominator']}")
        echo(f"+ {row['metric']} ({row['kind']}): {what}"
             + (f" where {' AND '.join(row['filters'])}" if row["filters"] else ""))
        echo(f"    by {row['time_column']} ({row['grain']}); source {row['source']}; "
             f"dimensions: {', '.join(row['dimensions'])}")
        echo(f"    from {row['how']}")
