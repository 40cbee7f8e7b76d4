"""The public Python API, run as the README shows it: a notebook, an Airflow task and a Dagster
asset (their code blocks are executed as written, against a copy of the demo warehouse), and the
import stays light."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_investigate import run_cli

ROOT = Path(__file__).resolve().parent.parent


def readme_block(title: str) -> str:
    """The README's python code block whose first line is ``# <title>``."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    found = [b for b in blocks if b.startswith(f"# {title}")]
    assert len(found) == 1, f"README: one python block starting '# {title}'"
    return found[0]


@pytest.fixture
def project_dir(demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the demo warehouse, its project as ./warehouse_rca.yml, as a user's folder."""
    shutil.copy(demo_dir / "warehouse_rca.duckdb", tmp_path / "warehouse_rca.duckdb")
    shutil.copy(demo_dir / "warehouse_rca_demo.yml", tmp_path / "warehouse_rca.yml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.warehouse_rca/profiles.yml of the machine
    return tmp_path


def test_the_notebook_example_writes_what_the_cli_writes(project_dir: Path) -> None:
    scope: dict = {}
    exec(compile(readme_block("notebook"), "README.md#notebook", "exec"), scope)  # noqa: S102 (the README's own code)
    doc = scope["doc"]
    code, out = run_cli(["investigate", "conversion_rate", "--baseline", "2026-11-10:2026-11-16",
                         "--current", "2026-11-17:2026-11-23", "--format", "json"], project_dir)
    assert code == 0, out
    cli = json.loads(out)
    drop = ("elapsed_seconds",)
    assert {k: v for k, v in doc.items() if k not in drop} == {k: v for k, v in cli.items() if k not in drop}
    assert doc["root_causes"] and doc["significant"]
    import duckdb

    with duckdb.connect(str(project_dir / "warehouse_rca.duckdb"), read_only=True) as con:
        status = con.execute("SELECT status FROM rca.runs WHERE run_id = ?", [doc["run_id"]]).fetchall()
    assert status == [("succeeded",)]


@pytest.mark.parametrize("title, call", [("Airflow, from Python", "rca_monitor"), ("Dagster asset", "rca_anomalies")])
def test_the_scheduler_examples_run_the_monitor_as_the_cli_does(demo_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                title: str, call: str) -> None:
    """The example and `monitor` on two fresh copies of the same warehouse: the same answer."""
    by_cli, by_python = tmp_path / "cli", tmp_path / "python"
    for folder in (by_cli, by_python):
        folder.mkdir()
        shutil.copy(demo_dir / "warehouse_rca.duckdb", folder / "warehouse_rca.duckdb")
        shutil.copy(demo_dir / "warehouse_rca_demo.yml", folder / "warehouse_rca.yml")
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out = run_cli(["monitor", "--as-of", "2026-11-23", "--format", "json"], by_cli)
    assert code in (0, 10), out
    cli = json.loads(out)
    monkeypatch.chdir(by_python)
    scope: dict = {}
    exec(compile(readme_block(title), f"README.md#{title}", "exec"), scope)  # noqa: S102 (the README's own code)
    got = scope[call]()
    if title == "Dagster asset":
        assert got == cli and cli and cli[0]["metric"] == "conversion_rate"
    else:
        assert got == sum(len(m["anomalies"]) for m in cli)


def test_import_is_light_and_every_public_name_resolves() -> None:
    code = ("import sys, warehouse_rca as w; heavy = [m for m in ('statsmodels', 'click', 'pandas') "
            "if m in sys.modules]; assert not heavy, heavy; [getattr(w, n) for n in w.__all__]; "
            "print(len(w.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 20
