"""CI gates (issue 17): mypy on the package and ruff on the code, run from the test suite."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(tool) is None:
        pytest.skip(f"{tool} is not installed (pip install -e '.[dev]')")
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, check=False,
                          capture_output=True, text=True)


@pytest.mark.slow
def test_mypy_passes() -> None:
    # pyproject's [tool.mypy] names the package and the per-module settings.
    result = _run("mypy")
    assert result.returncode == 0, f"mypy failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.slow
def test_ruff_passes() -> None:
    result = _run("ruff", "check", "warehouse_rca", "tests", "benchmarks")
    assert result.returncode == 0, f"ruff failed:\n{result.stdout}\n{result.stderr}"
