"""`warehouse-rca metrics`: what a project, a dbt project or a LookML folder exposes, with how
each metric maps (or why it does not); `warehouse-rca dbt-sources`: the findings tables as a dbt
sources.yml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from warehouse_rca.api import findings_sources
from warehouse_rca.cli.common import _handle_errors, _semantic_options
from warehouse_rca.cli.terminal import echo
from warehouse_rca.spec.profiles import DEFAULT_FINDINGS_SCHEMA
from warehouse_rca.spec.project import DEFAULT_PROJECT_FILE, load_project


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


@click.command("dbt-sources")
@click.option("--project", envvar="WAREHOUSE_RCA_PROJECT", type=click.Path(dir_okay=False),
              help="Project file (its findings_schema; default: ./warehouse_rca.yml).")
@click.option("--findings-schema",
              help="Schema of the findings tables (default: project's or rca).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the YAML here (e.g. models/warehouse_rca_sources.yml); default: stdout.")
@_handle_errors
def dbt_sources_command(project: str | None, findings_schema: str | None,
                        output: str | None) -> None:
    """Write a dbt sources.yml describing the findings tables (columns and descriptions)."""
    schema = findings_schema
    if schema is None and (project or Path(DEFAULT_PROJECT_FILE).is_file()):
        schema = load_project(project).findings_schema
    text = yaml.safe_dump(findings_sources(schema or DEFAULT_FINDINGS_SCHEMA), sort_keys=False,
                          allow_unicode=True, width=100)
    if output is None:
        echo(text)
        return
    Path(output).write_text(text, encoding="utf-8")
    echo(f"dbt sources written to {output}: reference them as "
         "{{ source('warehouse_rca', 'root_causes') }}")
