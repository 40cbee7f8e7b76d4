"""The ``warehouse-rca`` group: it lists every command without importing it (each module of
cli/ is loaded when its command runs), so ``--help`` imports no stage."""

from __future__ import annotations

import importlib

import click

from warehouse_rca import __version__
from warehouse_rca.cli.logs import _configure_logging

# Every command lives in a module of cli/ loaded when the command runs: the name, the module and
# attribute that define it, and the line `--help` lists for it, so listing the commands imports
# no stage (investigate and monitor pull in statsmodels: seconds for every command).
# tests/test_cli.py checks each line against the command's own help.
COMMANDS = {
    "investigate": ("warehouse_rca.cli.investigate", "investigate_command",
                    "Explain why METRIC changed between --baseline and --current."),
    "sql": ("warehouse_rca.cli.investigate", "sql_command",
            "Print the metric's cube as one query (dry run: no warehouse needed)."),
    "demo": ("warehouse_rca.cli.investigate", "demo_command",
             ("Build a demo DuckDB warehouse with an incident in it and investigate the "
              "conversion rate.")),
    "detect": ("warehouse_rca.cli.monitor", "detect_command",
               "Detect anomalies in METRIC's series and investigate each new one."),
    "monitor": ("warehouse_rca.cli.monitor", "monitor_command",
                "Detect and investigate across every metric of the project (for schedulers)."),
    "dimensions": ("warehouse_rca.cli.dimensions", "dimensions_group",
                   "Discover and maintain the dimensional framework."),
    "report": ("warehouse_rca.cli.findings", "report_command",
               ("Write RUN_ID's findings as one self-contained HTML report "
                "(opens without a network).")),
    "feedback": ("warehouse_rca.cli.findings", "feedback_command",
                 ("Confirm or reject FINDING (its rank or finding id) of RUN_ID, or record a cause "
                  "it missed; confirmed causes rank up in later investigations of the metric, "
                  "rejected ones down.")),
    "dbt-sources": ("warehouse_rca.cli.semantic", "dbt_sources_command",
                    ("Write a dbt sources.yml describing the findings tables (columns and "
                     "descriptions).")),
    "metrics": ("warehouse_rca.cli.semantic", "metrics_command",
                ("List the metrics the project, --dbt-project and --lookml expose, with their "
                 "mapping.")),
    "review": ("warehouse_rca.cli.findings", "review_command",
               ("How the diagnosis has done on METRIC's incidents: calibration, rejections, missed "
                "causes, and a replay of the labelled incidents with today's settings, scored "
                "against the verdicts.")),
    "history": ("warehouse_rca.cli.findings", "history_command",
                ("List METRIC's past incidents (succeeded runs) with their causes and analysts' "
                 "verdicts.")),
}


def command(name: str) -> click.Command:
    """The command ``name``, its module imported now."""
    module, attribute, _ = COMMANDS[name]
    return getattr(importlib.import_module(module), attribute)


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            self.add_command(command(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(n) for n in self.list_commands(ctx))
        rows = [(name, self.commands[name].get_short_help_str(limit) if name in self.commands
                 else click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="warehouse-rca")
@click.option(
    "--debug", is_flag=True, envvar="WAREHOUSE_RCA_DEBUG",
    help=(
        "Log every statement sent (with its run-id tag and duration) and full error chains; "
        "secrets stay redacted."
    ),
)
def main(debug: bool = False) -> None:
    """Automated root-cause analysis for business metrics, pushed down into your warehouse."""
    _configure_logging(debug)
