"""The built wheel works where a user installs it: templates ship inside the package.

A wheel is built from this checkout, installed into a fresh virtualenv (reusing this
interpreter's installed dependencies, not this checkout), and the CLI renders a cube from a
directory outside the repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_built_wheel_renders_sql_from_its_own_templates(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(wheels.glob("warehouse_rca-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    where = subprocess.run(
        [str(python), "-c", "import warehouse_rca.sql as s; print(s.TEMPLATE_DIR)"],
        cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()
    assert where.startswith(str(venv)), where  # the wheel's templates, not the checkout's
    out = subprocess.run(
        [str(venv / "bin" / "warehouse-rca"), "sql", "--dialect", "snowflake", "--table",
         "analytics.orders", "--time-column", "ts", "--measure", "sum(amount)",
         "--dimensions", "tier,region", "--baseline", "2026-11-09:2026-11-15",
         "--current", "2026-11-16:2026-11-22"],
        cwd=tmp_path, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.lstrip().startswith("WITH scoped AS") and '"tier"' in out.stdout
    # ... and the demo runs from it, end to end (build the warehouse, investigate, write findings)
    demo = tmp_path / "demo"
    demo.mkdir()
    out = subprocess.run(
        [str(venv / "bin" / "warehouse-rca"), "demo", "--dir", str(demo), "--sessions-per-day",
         "4000", "--format", "json"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout[out.stdout.index("{"):])
    assert doc["significant"] and doc["root_causes"], doc.get("summary")
    assert (demo / "warehouse_rca.duckdb").exists()
    # the contract ships too, and the wheel's demo output keeps it
    def shipped(name: str) -> dict:
        return json.loads(subprocess.run(
            [str(python), "-c", ("import importlib.resources as r; print((r.files('warehouse_rca') "
                                 f"/ 'schemas' / '{name}').read_text())")],
            cwd=tmp_path, check=True, capture_output=True, text=True).stdout)

    jsonschema.validate(doc, shipped("investigation.schema.json"),
                        cls=jsonschema.Draft202012Validator)
    monitor = ROOT / "warehouse_rca" / "schemas" / "monitor.schema.json"
    assert shipped("monitor.schema.json") == json.loads(monitor.read_text())
