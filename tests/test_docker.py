"""Lint the container files (no Docker engine runs here to build them)."""

from __future__ import annotations

from pathlib import Path

import yaml

DOCKER = Path(__file__).resolve().parent.parent / "docker"
KNOWN = {"FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "ENTRYPOINT", "CMD", "ARG", "LABEL", "EXPOSE", "HEALTHCHECK"}


def instructions() -> list[tuple[str, str]]:
    out, pending = [], ""
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word, rest))
            pending = ""
    return out


def test_dockerfile_is_well_formed() -> None:
    ins = instructions()
    assert ins[0][0] == "FROM" and ":" in ins[0][1] and not ins[0][1].endswith(":latest")
    assert all(word in KNOWN for word, _ in ins), [w for w, _ in ins if w not in KNOWN]
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1] not in ("root", "0")  # never run as root
    assert any(word == "ENTRYPOINT" and "warehouse-rca" in rest for word, rest in ins)
    copied = " ".join(rest for word, rest in ins if word == "COPY")
    for needed in ("pyproject.toml", "warehouse_rca", "sql_templates"):
        assert needed in copied
        assert (DOCKER.parent / needed).exists()
    # the image runs the built wheel, as a user's install would: no editable install that would
    # hide templates missing from the wheel
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    assert "pip wheel" in runs and "/wheels/warehouse_rca-" in runs
    assert " -e " not in f" {runs} " and "--editable" not in runs
    final = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    assert not any(word == "COPY" and "--from=" not in rest for word, rest in ins[final:])


def test_compose_has_a_warehouse_and_a_scheduled_monitor() -> None:
    doc = yaml.safe_load((DOCKER / "compose.yml").read_text())
    services = doc["services"]
    assert services["warehouse"]["image"].startswith("postgres:")
    monitor = services["monitor"]
    assert monitor["build"]["dockerfile"] == "docker/Dockerfile"
    assert "warehouse-rca monitor" in " ".join(monitor["entrypoint"])
    # secrets are references, never values
    assert all(str(v).startswith("${") for k, v in monitor["environment"].items() if "PASSWORD" in k)
    project = yaml.safe_load((DOCKER / "project" / "warehouse_rca.yml").read_text())
    assert "conversion_rate" in project["metrics"]
