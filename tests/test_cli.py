"""The command line's shape: commands load when used, and `--help` imports no stage."""

from __future__ import annotations

import subprocess
import sys

import click

from warehouse_rca.cli import main
from warehouse_rca.cli.main import COMMANDS, command


def test_each_listed_help_line_is_the_commands_own() -> None:
    for name, (_, _, line) in COMMANDS.items():
        loaded = command(name)
        assert loaded.name == name
        assert loaded.get_short_help_str(limit=1000) == line, name


def test_help_lists_every_command_without_importing_a_stage() -> None:
    probe = ("import sys; from warehouse_rca.cli import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "loaded = sorted(m for m in sys.modules if m.startswith(('warehouse_rca.', 'statsmodels')))\n"
             "print('LOADED', ','.join(loaded))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = out.split("LOADED", 1)[1].strip().split(",")
    assert not [m for m in loaded if m.startswith("statsmodels")], loaded
    # the group and its logging only: not the options every command shares (cli.common), which
    # pull in the spec (sqlglot, jinja2, yaml)
    assert {m.split(".")[1] for m in loaded} <= {"cli"}, loaded
    assert "warehouse_rca.cli.common" not in loaded, loaded
    assert set(loaded) & {f"warehouse_rca.cli.{c}" for c in ("investigate", "monitor", "findings")} == set()
    for name in COMMANDS:
        assert f"\n  {name} " in out, name


# What a start-up must not pay for: the statistics stack, dataframes, SQL parsing and templating.
HEAVY = ("statsmodels", "pandas", "numpy", "scipy", "sklearn", "matplotlib", "sqlglot", "jinja2",
         "yaml", "duckdb", "sqlalchemy", "rich")


def _imported_by(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running ``code``."""
    probe = code + "\nimport sys\nprint('LOADED', ','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split("LOADED", 1)[1].strip().split(","))


def test_import_warehouse_rca_imports_neither_statsmodels_nor_click() -> None:
    """The public API loads its names when used (warehouse_rca.__getattr__): importing the
    package from a notebook, Airflow or Dagster costs nothing."""
    loaded = _imported_by("import warehouse_rca")
    assert "warehouse_rca" in loaded
    assert loaded.isdisjoint({"click", *HEAVY}), sorted(loaded & {"click", *HEAVY})


def test_cli_help_imports_no_heavy_library() -> None:
    """`python -m warehouse_rca.cli --help`, as the console script runs it (its time is
    benchmarks/bench_cli_startup.py's; this pins the cause, not the machine's speed)."""
    loaded = _imported_by(
        "import runpy, sys\nsys.argv = ['warehouse-rca', '--help']\n"
        "try:\n    runpy.run_module('warehouse_rca.cli', run_name='__main__')\n"
        "except SystemExit as err:\n    assert err.code == 0, err.code\n")
    assert "click" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_a_command_runs_through_the_group() -> None:
    ctx = click.Context(main)
    assert isinstance(main.get_command(ctx, "history"), click.Command)
    assert main.get_command(ctx, "nope") is None
