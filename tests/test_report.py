"""Narratives, the HTML report (opened in headless chromium), verification SQL and the BI tables."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_feedback import cli, investigate_json, make_project
from warehouse_rca import narrative
from warehouse_rca.engines.duckdb import DuckDBEngine
from warehouse_rca.report.html import build_report, render_report
from warehouse_rca.spec.profiles import Target
from warehouse_rca.spec.project import load_project


@pytest.fixture(scope="module")
def investigated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = make_project(tmp_path_factory.mktemp("report"))
    return folder, investigate_json(folder)


def engine_of(folder: Path) -> DuckDBEngine:
    return DuckDBEngine(Target("t", "duckdb", {"path": str(folder / "wh.duckdb")}, "test"))


# ------------------------------------------------------------------------------- narratives


def test_numbers_are_formatted_for_people() -> None:
    assert narrative.fmt_value(0.038, "percent") == "3.80%"
    assert narrative.fmt_value(0.38, "percent") == "38.0%"
    assert narrative.fmt_value(1_234_567.8, "currency") == "$1.23M"
    assert narrative.fmt_value(12_345, "number") == "12.35K"
    assert narrative.fmt_value(1234, "number") == "1,234"
    assert narrative.fmt_value(63.0, "number") == "63"  # a count, not "63.00"
    assert narrative.fmt_value(4.5, "number") == "4.50"
    assert narrative.fmt_relative(-0.1123) == "-11%"
    assert narrative.fmt_points(-0.004, "percent") == "-0.40 pp"


def test_headline_and_cause_sentences(investigated: tuple[Path, dict]) -> None:
    _, doc = investigated
    assert re.fullmatch(
        r"Conversion rate fell from \d+\.\d\d% to \d+\.\d\d% \(-\d+%\)\. \d+% of the drop: device = ios, "
        r"whose conversion rate fell from \d+\.\d\d% to \d+\.\d\d% \(confidence [01]\.\d\d\)\. 1 more cause\(s\) below\.",
        doc["summary"],
    ), doc["summary"]
    for cause in doc["root_causes"]:
        assert f"a {cause['effect']} change" in cause["narrative"] or "mix shift" in cause["narrative"]


def test_causal_sentence_is_optional_and_readable() -> None:
    assert narrative.causal_sentence(None) == ""
    text = narrative.causal_sentence({
        "verdict": "confirmed", "method": "did", "control": "synthetic", "did_estimate": -0.021,
        "did_p_value": 0.0012, "change_start": "2026-11-17T00:00:00", "ordering": "leads",
        "events": [{"description": "release 5.2"}], "explained_by": None,
    }, "percent")
    assert text == ("Causal evidence: confirmed; difference-in-differences against a synthetic control "
                    "estimates -2.10 pp (p = 0.0012); its change started 2026-11-17, leading the metric's; "
                    "linked change: release 5.2.")


# ------------------------------------------------------------------------------- report


def test_report_command_rebuilds_from_findings_with_one_series_query(investigated: tuple[Path, dict],
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    folder, doc = investigated
    engine = engine_of(folder)
    try:
        with caplog.at_level(logging.DEBUG, logger="warehouse_rca.sql"):
            html = build_report(engine, "rca", doc["run_id"], load_project(folder / "warehouse_rca.yml"))
    finally:
        engine.close()
    on_source = [r.getMessage() for r in caplog.records if '"sessions"' in r.getMessage() and "LIMIT 0" not in r.getMessage()]
    assert len(on_source) == 1 and "GROUP BY" in on_source[0]  # one aggregate, no fact rows
    code, out = cli(folder, "report", doc["run_id"], "-o", "page.html")
    assert code == 0, out
    page = (folder / "page.html").read_text()
    assert page.count('src="data:image/svg+xml;base64,') == 3
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing to fetch: opens offline
    assert doc["summary"].replace("'", "&#39;") in page
    for cause in doc["root_causes"]:
        assert f'id="finding-{cause["finding_id"]}"' in page
    assert "Verification SQL" in page and "Causal evidence" in page or "causal" not in doc["root_causes"][0]
    assert html.count("<section class=\"finding\"") == len(doc["root_causes"])


def test_investigate_report_option_and_errors(investigated: tuple[Path, dict]) -> None:
    folder, _ = investigated
    code, out = cli(folder, "investigate", "conversion_rate", "--baseline", "2026-11-10:2026-11-16",
                    "--current", "2026-11-17:2026-11-23", "--report", "inv.html")
    assert code == 0, out
    assert (folder / "inv.html").read_text().startswith("<!DOCTYPE html>")
    code, out = cli(folder, "investigate", "conversion_rate", "--baseline", "2026-11-10:2026-11-16",
                    "--current", "2026-11-17:2026-11-23", "--report", "x.html", "--no-write")
    assert code == 2 and "drop --no-write" in out
    code, out = cli(folder, "report", "0000000000000000")
    assert code == 2 and "no run '0000000000000000'" in out


def test_report_tolerates_missing_evidence_and_no_causes() -> None:
    run = {"run_id": "r1", "metric": "m", "metric_kind": "additive", "baseline_value": 10.0,
           "current_value": 12.0, "summary": "M rose <b>", "parameters": "{}", "finished_at": None}
    page = render_report(run, [], None, title="M", fmt="number", series_note="no series")
    assert "No root cause was kept" in page and "M rose &lt;b&gt;" in page and "no series" in page
    cause = {"rank": 1, "finding_id": "f1", "segment_label": "a = <x>", "effect": "rate", "baseline_value": 1.0,
             "current_value": 3.0, "contribution": 2.0, "share_of_change": 1.0, "confidence": 0.9,
             "narrative": "n", "rate_effect": 2.0, "mix_effect": 0.0, "baseline_support": 5.0,
             "current_support": 5.0, "p_value": 0.01, "counterfactual_value": 10.0,
             "counterfactual_low": None, "counterfactual_high": None}
    page = render_report(run, [cause], None, title="M", fmt="number")
    assert "a = &lt;x&gt;" in page and "Causal evidence" not in page


@pytest.mark.parametrize("label", ["price = $5", "a = $x^{2}$", "b = $\\frac{1}$", "c = $\\undefined$ $"])
def test_dollar_signs_in_data_are_text_in_the_charts(label: str) -> None:
    """matplotlib reads $...$ as mathtext: a segment value with a "$" once crashed the report
    after the findings were written (issue 19). Charts render it as the text it is."""
    import base64

    run = {"run_id": "r1", "metric": "m", "metric_kind": "additive", "baseline_value": 10.0,
           "current_value": 12.0, "summary": "s", "parameters": "{}", "finished_at": None}
    cause = {"rank": 1, "finding_id": "f1", "segment_label": label, "effect": "rate",
             "baseline_value": 1.0, "current_value": 3.0, "contribution": 2.0, "share_of_change": 1.0,
             "confidence": 0.9, "narrative": "n", "rate_effect": 2.0, "mix_effect": 0.0,
             "baseline_support": 5.0, "current_support": 5.0, "p_value": 0.01,
             "counterfactual_value": 10.0, "counterfactual_low": None, "counterfactual_high": None}
    from warehouse_rca.report.charts import segments_chart, waterfall_chart

    charts = [base64.b64decode(uri.split(",", 1)[1]).decode()
              for uri in (waterfall_chart(run, [cause], "number"), segments_chart(run, [cause], "number"))]
    assert charts and all("<svg" in c for c in charts)


def test_findings_tables_for_bi_with_verification_sql(investigated: tuple[Path, dict]) -> None:
    folder, doc = investigated
    engine = engine_of(folder)
    try:
        rows = engine.query("SELECT * FROM rca.latest_root_causes WHERE metric = 'conversion_rate' ORDER BY rank")
        assert len(rows) == len(doc["root_causes"]) and rows["finding_id"].is_unique
        for _, row in rows.iterrows():
            check = engine.query(row["verification_sql"]).set_index("period")
            assert check.loc["baseline", "value"] == pytest.approx(row["baseline_value"])
            assert check.loc["current", "value"] == pytest.approx(row["current_value"])
        latest = engine.query("SELECT run_id FROM rca.latest_runs WHERE metric = 'conversion_rate'")
        assert latest["run_id"].tolist() == [doc["run_id"]]
    finally:
        engine.close()
    lookml = (Path(__file__).resolve().parent.parent / "bi" / "looker" / "warehouse_rca.view.lkml").read_text()
    from warehouse_rca.findings.feedback import FEEDBACK_COLUMNS
    from warehouse_rca.findings.store import ROOT_CAUSE_COLUMNS, RUNS_COLUMNS

    for name, _ in RUNS_COLUMNS + ROOT_CAUSE_COLUMNS + FEEDBACK_COLUMNS:  # every column documented
        assert f"${{TABLE}}.{name} " in lookml or f"${{TABLE}}.{name};;" in lookml, name


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_report_opens_in_headless_chromium(investigated: tuple[Path, dict], tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed and scripts/test.sh could not install it")
    folder, doc = investigated
    page = tmp_path / "report.html"
    assert cli(folder, "report", doc["run_id"], "-o", str(page))[0] == 0
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2600", "--hide-scrollbars"]
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=60, check=False)
    assert 'data-charts-rendered="3/3"' in dom.stdout, dom.stderr[-2000:]  # every chart decoded
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=60, check=False)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    assert 'data-fits="yes"' in dom.stdout  # no sideways scrolling at desktop width
    keep = Path(__file__).resolve().parent.parent / ".pytest_cache" / "report_screenshot.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)  # for a person to look at
    # a phone's width: the page still fits (tables scroll inside their box), charts decode
    phone = [f if not f.startswith("--window-size") else "--window-size=390,844" for f in flags]
    dom = subprocess.run([browser, *phone, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=60, check=False)
    assert 'data-charts-rendered="3/3"' in dom.stdout and 'data-fits="yes"' in dom.stdout, dom.stdout[-500:]
    small = tmp_path / "report_phone.png"
    subprocess.run([browser, *phone, f"--screenshot={small}", page.as_uri()], capture_output=True, timeout=60,
                   check=False)
    assert small.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and small.stat().st_size > 10_000
    shutil.copyfile(small, keep.with_name("report_screenshot_phone.png"))
