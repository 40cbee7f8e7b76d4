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
    # the group, the options every command shares, and the spec they resolve (no warehouse I/O)
    assert {m.split(".")[1] for m in loaded} <= {"cli", "spec", "sql", "errors"}, loaded
    assert set(loaded) & {f"warehouse_rca.cli.{c}" for c in ("investigate", "monitor", "findings")} == set()
    for name in COMMANDS:
        assert f"\n  {name} " in out, name


def test_a_command_runs_through_the_group() -> None:
    ctx = click.Context(main)
    assert isinstance(main.get_command(ctx, "history"), click.Command)
    assert main.get_command(ctx, "nope") is None
