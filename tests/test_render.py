"""Every supported combination renders lint-clean; every unsupported one is refused.

Cheap checks for all combinations (render, ruff, leftover Jinja, the files a
feature brings and only those, the CI workflow); the expensive ones (install
and run the project's own suite) live in test_suites.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from avanzada.checks import iter_text_files, lint, render
from avanzada.combinations import supported, unsupported
from helpers import REPO_ROOT

SUPPORTED = supported()
UNSUPPORTED = unsupported()


def copier_defaults() -> dict[str, Any]:
    """Answers copier gives when nothing is asked, read from copier.yml itself."""
    questions = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
    return {
        "features": questions["features"]["default"],
        "scale_out": questions["scale_out"]["default"],
        "package_name": "my_service",
    }


def effective(answers: dict[str, Any]) -> dict[str, Any]:
    return {**copier_defaults(), **answers}


def uses_redis(answers: dict[str, Any]) -> bool:
    features = answers["features"]
    backend = answers.get("cache_backend", answers["scale_out"])
    return answers["scale_out"] == "redis" or ("cache" in features and backend == "redis")


def test_renders_lint_clean_without_jinja_leftovers(rendered: tuple) -> None:
    name, project = rendered
    failures = lint(project)
    assert not failures, f"{name}:\n" + "\n".join(map(str, failures))


def test_rendered_files_never_cite_the_seed(rendered: tuple) -> None:
    # "The seed" is avanzada's design source; a generated project's reader has never
    # seen it. (A random seed, as schemathesis's, is another thing.)
    name, project = rendered
    citation = re.compile(r"\bthe seed(?:'s)?\b(?! is fixed)", re.IGNORECASE)
    citing = [
        str(path.relative_to(project))
        for path in iter_text_files(project)
        if citation.search(path.read_text(encoding="utf-8"))
    ]
    assert citing == [], name


def test_feature_files_present_exactly_when_chosen(rendered: tuple) -> None:
    name, project = rendered
    answers = effective(SUPPORTED[name])
    package = project / "src" / answers["package_name"]
    for always in ("app.py", "settings.py", "health.py", "__main__.py", "observability"):
        assert (package / always).exists(), f"{name}: {always} missing"
    for always in ("README.md", "pyproject.toml", ".gitignore", ".copier-answers.yml"):
        assert (project / always).is_file(), f"{name}: {always} missing"
    assert (project / "tests" / "conftest.py").is_file()
    assert (package / "db").is_dir() == ("postgres" in answers["features"])
    assert (package / "redis_client.py").is_file() == uses_redis(answers)
    queue = "queue" in answers["features"]
    queue_on_redis = queue and answers["scale_out"] == "redis"
    assert (package / "tasks").is_dir() == queue
    for tasks_file in ("registry.py", "memory.py", "batch.py", "routes.py", "examples.py"):
        assert (package / "tasks" / tasks_file).is_file() == queue, f"{name}: {tasks_file}"
    assert (package / "tasks" / "redis_queue.py").is_file() == queue_on_redis
    assert (package / "tasks" / "worker.py").is_file() == queue_on_redis
    with_postgres = queue and "postgres" in answers["features"]
    assert (package / "tasks" / "copy_sink.py").is_file() == with_postgres
    for test_file in ("test_tasks.py", "test_tasks_queue.py", "test_batch.py"):
        assert (project / "tests" / test_file).is_file() == queue, f"{name}: {test_file}"
    assert (project / "tests" / "test_tasks_worker.py").is_file() == queue_on_redis
    cache = "cache" in answers["features"]
    cache_on_redis = cache and answers.get("cache_backend", answers["scale_out"]) == "redis"
    assert (package / "cache").is_dir() == cache
    assert (package / "cache" / "memory.py").is_file() == cache
    assert (package / "cache" / "redis_backend.py").is_file() == cache_on_redis
    assert (project / "tests" / "test_cache.py").is_file() == cache
    postgres = "postgres" in answers["features"]
    assert (package / "items.py").is_file() == postgres
    assert (package / "db" / "sql" / "0001_items.sql").is_file() == postgres
    assert (project / "tests" / "test_items.py").is_file() == postgres
    docker, nginx = "docker" in answers["features"], "nginx" in answers["features"]
    for docker_file in ("Dockerfile", "compose.yaml", ".dockerignore", "tests/test_docker.py"):
        assert (project / docker_file).is_file() == docker, f"{name}: {docker_file}"
    for nginx_file in ("deploy/nginx/nginx.conf", "deploy/nginx/upstreams.conf"):
        assert (project / nginx_file).is_file() == nginx, f"{name}: {nginx_file}"
    assert (project / "tests" / "test_nginx.py").is_file() == nginx
    compose_upstreams = project / "deploy" / "nginx" / "upstreams.compose.conf"
    assert compose_upstreams.is_file() == (docker and nginx)
    sse = "sse" in answers["features"]
    sse_on_redis = sse and answers["scale_out"] == "redis"
    for sse_file in ("__init__.py", "hub.py", "memory.py", "model.py", "metrics.py", "routes.py"):
        assert (package / "events" / sse_file).is_file() == sse, f"{name}: events/{sse_file}"
    assert (package / "events" / "redis_stream.py").is_file() == sse_on_redis
    for sse_test in ("sse_client.py", "test_sse.py"):
        assert (project / "tests" / sse_test).is_file() == sse, f"{name}: tests/{sse_test}"
    assert (project / "tests" / "test_sse_redis.py").is_file() == sse_on_redis
    rooms = "rooms" in answers["features"]
    rooms_on_redis = rooms and answers["scale_out"] == "redis"
    for rooms_file in ("__init__.py", "bus.py", "lifecycle.py", "manager.py", "protocol.py"):
        assert (package / "rooms" / rooms_file).is_file() == rooms, f"{name}: rooms/{rooms_file}"
    for rooms_file in ("metrics.py", "routes.py"):
        assert (package / "rooms" / rooms_file).is_file() == rooms, f"{name}: rooms/{rooms_file}"
    assert (package / "rooms" / "redis_bus.py").is_file() == rooms_on_redis
    assert (project / "tests" / "test_rooms.py").is_file() == rooms
    assert (project / "tests" / "test_rooms_redis.py").is_file() == rooms_on_redis
    tracing = "tracing" in answers["features"]
    assert (package / "tracing").is_dir() == tracing
    assert (project / "tests" / "test_tracing.py").is_file() == tracing
    if not tracing:
        # Not chosen: no trace code at all, not even a disabled one on a hot path.
        traced = [
            str(path.relative_to(project))
            for path in [*package.rglob("*.py"), *(project / "tests").rglob("*.py")]
            if re.search(r"opentelemetry|traceparent|tracing", path.read_text(), re.IGNORECASE)
        ]
        assert not traced, f"{name}: {traced}"
    # The SIGTERM hook exists for long-lived connections; the shutdown test always.
    assert (package / "shutdown.py").is_file() == (rooms or sse)
    assert (project / "tests" / "test_shutdown.py").is_file()


def test_dependencies_follow_the_features(rendered: tuple) -> None:
    name, project = rendered
    answers = effective(SUPPORTED[name])
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    deps = " ".join(pyproject["project"]["dependencies"])
    assert "fastapi" in deps and "uvicorn" in deps and "prometheus-client" in deps
    assert ("asyncpg" in deps) == ("postgres" in answers["features"]), deps
    assert ("opentelemetry-sdk" in deps) == ("tracing" in answers["features"]), deps
    assert ("redis" in deps) == uses_redis(answers), deps
    queue_on_redis = "queue" in answers["features"] and answers["scale_out"] == "redis"
    assert ("streaq" in deps) == queue_on_redis, deps


def test_answers_file_records_the_choices(rendered: tuple) -> None:
    name, project = rendered
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    for key, value in SUPPORTED[name].items():
        # Every answer a combination gives is one copier asks (and records) for it.
        assert key in recorded, f"{name}: the answer {key!r} was not recorded"
        assert recorded[key] == value, key
    assert "uses_redis" not in recorded  # computed, never recorded


def test_generated_ci_workflow_passes_actionlint(rendered: tuple) -> None:
    name, project = rendered
    actionlint = Path(sys.executable).with_name("actionlint")
    workflow = project / ".github" / "workflows" / "ci.yml"
    assert workflow.is_file()
    done = subprocess.run(
        [str(actionlint), "-no-color", str(workflow)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{name}:\n{done.stdout}{done.stderr}"
    text = workflow.read_text()
    assert ("postgres:" in text) == ("postgres" in effective(SUPPORTED[name])["features"])


def test_dockerfile_passes_hadolint(rendered: tuple) -> None:
    name, project = rendered
    if not (project / "Dockerfile").is_file():
        pytest.skip("no Docker feature in this combination")
    hadolint = Path(sys.executable).with_name("hadolint")
    done = subprocess.run(
        [str(hadolint), "--no-color", str(project / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{name}:\n{done.stdout}{done.stderr}"


def test_nginx_upstreams_follow_the_answer(rendered: tuple) -> None:
    name, project = rendered
    upstreams = project / "deploy" / "nginx" / "upstreams.conf"
    if not upstreams.is_file():
        pytest.skip("no nginx feature in this combination")
    servers = [line for line in upstreams.read_text().splitlines() if line.startswith("server ")]
    assert len(servers) == SUPPORTED[name].get("nginx_upstreams", 1)


def expected_alerts(answers: dict[str, Any]) -> set[str]:
    """The alerts of the features chosen (deploy/prometheus/alerts.yml)."""
    features = answers["features"]
    alerts = {"ServiceDown", "ReadinessFailing", "HighErrorRatio", "HighLatencyP99"}
    alerts.add("AuthDeniedSpike")
    by_feature = {
        "rooms": {"RoomEvictions"},
        "sse": {"SseEvictions", "SseResyncs"},
        "queue": {"TaskQueueBacklog", "TaskWaitP99", "TaskFailures"},
        "cache": {"CacheBackendErrors"},
        "postgres": {"DatabaseUnavailable"},
    }
    for feature, feature_alerts in by_feature.items():
        if feature in features:
            alerts |= feature_alerts
    if answers["scale_out"] == "redis" and ({"rooms", "sse"} & set(features)):
        alerts.add("RedisBusDisconnected")
    return alerts


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: scripts/services installs it (Debian package prometheus)"
    return path


_PROMTOOL_PASSED: set[str] = set()
"""Digests of rule and test files promtool already passed: combinations share most."""


def test_alert_rules_follow_the_features_and_pass_their_promtool_tests(rendered: tuple) -> None:
    name, project = rendered
    answers = effective(SUPPORTED[name])
    folder = project / "deploy" / "prometheus"
    rules = yaml.safe_load((folder / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert alerts == expected_alerts(answers), name
    readme = (project / "README.md").read_text()
    docs = (REPO_ROOT / "docs" / "observability.md").read_text()
    for alert in alerts:
        assert f"\n#### {alert}\n" in readme, f"{name}: no runbook for {alert} in README"
        assert f"\n### {alert}\n" in docs, f"no runbook for {alert} in docs/observability.md"
    digest = hashlib.sha256(
        (folder / "alerts.yml").read_bytes() + (folder / "alerts.test.yml").read_bytes()
    ).hexdigest()
    if digest in _PROMTOOL_PASSED:
        return
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run(
            [promtool(), *args], cwd=folder, capture_output=True, text=True, check=False
        )
        command = " ".join(["promtool", *args])
        assert done.returncode == 0, f"{name}: {command}\n{done.stdout}{done.stderr}"
    _PROMTOOL_PASSED.add(digest)


def test_scrape_config_passes_promtool_and_sends_the_key_from_a_file(
    rendered: tuple, tmp_path: Path
) -> None:
    name, project = rendered
    answers = effective(SUPPORTED[name])
    folder = tmp_path / "prometheus"
    shutil.copytree(project / "deploy" / "prometheus", folder)
    (folder / "api_key").write_text("any-key-for-the-check\n")
    done = subprocess.run(
        [promtool(), "check", "config", "prometheus.yml"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{name}:\n{done.stdout}{done.stderr}"
    config = yaml.safe_load((folder / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    web = jobs.pop("my-service")
    assert web["authorization"] == {"type": "Bearer", "credentials_file": "api_key"}
    queue_on_redis = "queue" in answers["features"] and answers["scale_out"] == "redis"
    assert set(jobs) == ({"my-service-worker"} if queue_on_redis else set()), name
    assert "deploy/prometheus/api_key" in (project / ".gitignore").read_text()


def test_dashboard_has_the_structure_grafana_expects(rendered: tuple) -> None:
    name, project = rendered
    answers = effective(SUPPORTED[name])
    board = json.loads((project / "deploy" / "grafana" / "dashboard.json").read_text())
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
    rows = {panel["title"] for panel in board["panels"] if panel["type"] == "row"}
    titles = {
        "rooms": "WebSocket rooms",
        "sse": "Server-Sent Events",
        "queue": "Task queue",
        "cache": "Cache",
        "postgres": "Database",
    }
    expected = {"Service"} | {title for key, title in titles.items() if key in answers["features"]}
    if answers["scale_out"] == "redis" and ({"rooms", "sse"} & set(answers["features"])):
        expected.add("Redis bus")
    assert rows == expected, name
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
    provisioning = project / "deploy" / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["type"] == "prometheus"
    assert (provisioning / "dashboards" / "dashboards.yml").is_file()


def test_compose_starts_prometheus_and_grafana_under_a_profile(rendered: tuple) -> None:
    name, project = rendered
    compose_file = project / "compose.yaml"
    if not compose_file.is_file():
        pytest.skip("no Docker feature in this combination")
    services = yaml.safe_load(compose_file.read_text())["services"]
    for service in ("prometheus", "grafana"):
        assert services[service]["profiles"] == ["observability"], name
        for volume in services[service]["volumes"]:
            assert (project / volume.split(":")[0]).exists(), f"{name}: {volume}"
    always = [service for key, service in services.items() if key not in ("prometheus", "grafana")]
    assert all("profiles" not in service for service in always), name


@pytest.mark.parametrize("name", sorted(UNSUPPORTED), ids=str)
def test_unsupported_combination_is_refused_with_its_reason(name: str, tmp_path: Path) -> None:
    case = UNSUPPORTED[name]
    with pytest.raises(ValueError, match=case.message):
        render(case.answers, tmp_path / "project", template=REPO_ROOT)
    assert not (tmp_path / "project" / "pyproject.toml").exists()
