"""The rendered project's toolchain and deployment files, for every supported combination.

uv (dependency groups, the lock task), the git hooks, the justfile, Dependabot,
the hardened CI workflow (zizmor, pinned actions) and the Kubernetes manifests
(kubernetes-validate, kustomize through kubectl). All offline except the lock
tests, which need the package index. The hooks run for real in test_suites.py,
on projects whose environment `uv sync` installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from avanzada.combinations import supported
from check_jsonschema.builtin_schemas import get_builtin_schema
from helpers import REPO_ROOT, avanzada_bin

BIN = Path(sys.executable).parent
SUPPORTED = supported()

#: Oldest Kubernetes the manifests claim (the preStop sleep action is on by default from 1.30).
OLDEST_KUBERNETES = "1.30.0"

DEPENDABOT_SCHEMA = get_builtin_schema("vendor.dependabot")

#: `uses: owner/repo@<40 hex>  # vX.Y.Z`: pinned by commit, the version beside it.
PINNED_ACTION = re.compile(r"^\s*-?\s*uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+){0,2}$")


def answers_of(name: str) -> dict[str, Any]:
    """The effective answers of a combination (copier's defaults for the rest)."""
    questions = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
    answers = {
        "features": questions["features"]["default"],
        "scale_out": questions["scale_out"]["default"],
    }
    return {**answers, **SUPPORTED[name]}


def horizontal(answers: dict[str, Any]) -> bool:
    stateful = {"rooms", "sse", "queue"} & set(answers["features"])
    return answers["scale_out"] == "redis" or not stateful


def queue_on_redis(answers: dict[str, Any]) -> bool:
    return "queue" in answers["features"] and answers["scale_out"] == "redis"


def run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, check=False
    )


# -- uv ----------------------------------------------------------------------


def test_dev_tools_are_a_dependency_group_and_the_extras_stay(rendered: tuple) -> None:
    name, project = rendered
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    dev = " ".join(pyproject["dependency-groups"]["dev"])
    for tool in ("pytest", "ruff", "mypy", "pre-commit", "pre-commit-hooks", "rust-just"):
        assert re.search(rf"(^| ){re.escape(tool)}[>=<]", dev), f"{name}: {tool} not in dev"
    extras = pyproject["project"]["optional-dependencies"]
    assert extras == {"profiling": ["pyinstrument>=5"]}, f"{name}: {extras}"


# -- hooks -------------------------------------------------------------------


#: The hooks are the same in every project (the file is not a Jinja template).
HOOKS = REPO_ROOT / "template" / ".pre-commit-config.yaml"


def test_hooks_are_the_same_in_every_project(rendered: tuple) -> None:
    name, project = rendered
    assert (project / ".pre-commit-config.yaml").read_bytes() == HOOKS.read_bytes(), name


def test_hooks_are_local_and_run_the_projects_own_tools() -> None:
    config = yaml.safe_load(HOOKS.read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"], "no hook is downloaded"
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    for required in ("ruff-check", "ruff-format", "mypy", "trailing-whitespace"):
        assert required in hooks, required
    for hook in hooks.values():
        assert hook["language"] == "system"
        assert hook["entry"].startswith("uv run --no-sync "), hook["entry"]
    for manager in ("pre-commit", "prek"):
        done = run(BIN / manager, "validate-config", HOOKS)
        assert done.returncode == 0, f"{manager}\n{done.stdout}{done.stderr}"


# -- justfile ----------------------------------------------------------------


def test_justfile_has_the_tasks_the_features_need(rendered: tuple) -> None:
    name, project = rendered
    answers = answers_of(name)
    done = run(BIN / "just", "--summary", cwd=project)
    assert done.returncode == 0, done.stderr
    expected = {"default", "setup", "dev", "serve", "test", "lint", "fmt", "hooks", "bench"}
    if "postgres" in answers["features"]:
        expected.add("migrate")
    if queue_on_redis(answers):
        expected.add("worker")
    if "docker" in answers["features"]:
        expected.add("up")
    if {"rooms", "sse"} & set(answers["features"]):
        expected.add("bench-realtime")
    assert set(done.stdout.split()) == expected, name
    for recipe in sorted(expected - {"default"}):
        dry = run(BIN / "just", "--dry-run", recipe, cwd=project)
        assert dry.returncode == 0, f"{name}: just {recipe}\n{dry.stderr}"
        commands = [line for line in dry.stderr.splitlines() if line.strip()]
        assert commands, f"{name}: just {recipe} runs nothing"
        tools = {"uv", "docker", "if"}
        assert all(line.split()[0] in tools for line in commands), f"{recipe}: {commands}"


# -- CI and Dependabot ---------------------------------------------------------


def test_ci_is_hardened_and_passes_zizmor_offline(rendered: tuple) -> None:
    name, project = rendered
    workflow_text = (project / ".github" / "workflows" / "ci.yml").read_text()
    workflow = yaml.safe_load(workflow_text)
    assert workflow["permissions"] == {"contents": "read"}
    uses = [line for line in workflow_text.splitlines() if "uses:" in line]
    assert uses, "no action at all"
    for line in uses:
        assert PINNED_ACTION.match(line), f"{name}: not pinned by commit with its version: {line}"
    steps = workflow["jobs"]["check"]["steps"]
    checkout = [step for step in steps if step.get("uses", "").startswith("actions/checkout@")]
    assert checkout and checkout[0]["with"]["persist-credentials"] is False
    runs = [step["run"] for step in steps if "run" in step]
    assert "uv sync --locked" in runs and "uv run pytest" in runs, runs
    done = run(BIN / "zizmor", "--offline", "--no-progress", "--format", "plain", ".", cwd=project)
    assert done.returncode == 0, f"{name}: zizmor\n{done.stdout}{done.stderr}"
    assert "No findings to report" in done.stdout, done.stdout


def test_dependabot_updates_every_ecosystem_weekly_in_groups(rendered: tuple) -> None:
    name, project = rendered
    config = yaml.safe_load((project / ".github" / "dependabot.yml").read_text())
    # SchemaStore's schema, as vendored by check-jsonschema (no download).
    jsonschema.validate(config, DEPENDABOT_SCHEMA)
    updates = config["updates"]
    expected = {"uv", "github-actions"}
    if "docker" in answers_of(name)["features"]:
        expected |= {"docker", "docker-compose"}
    assert {update["package-ecosystem"] for update in updates} == expected
    for update in updates:
        assert update["schedule"]["interval"] == "weekly"
        assert update["groups"], "one pull request per ecosystem"


# -- Kubernetes ----------------------------------------------------------------


def kustomize(project: Path) -> list[dict[str, Any]]:
    """The resources `kubectl kustomize` builds from deploy/k8s (kubectl's own kustomize)."""
    done = run(BIN / "kubectl", "kustomize", project / "deploy" / "k8s")
    assert done.returncode == 0, done.stderr
    return [document for document in yaml.safe_load_all(done.stdout) if document]


def test_kubernetes_manifests_only_with_an_image_to_deploy(rendered: tuple) -> None:
    name, project = rendered
    docker = "docker" in answers_of(name)["features"]
    assert (project / "deploy" / "k8s" / "kustomization.yaml").is_file() == docker, name
    assert (project / "tests" / "test_k8s.py").is_file() == docker, name


def test_kubernetes_manifests_validate_and_build(rendered: tuple, tmp_path: Path) -> None:
    name, project = rendered
    answers = answers_of(name)
    k8s = project / "deploy" / "k8s"
    if not k8s.is_dir():
        pytest.skip("no Docker feature: no image to deploy")
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    for listed in kustomization["resources"]:
        assert (k8s / listed).is_file(), f"{name}: {listed} listed but missing"
    manifests = sorted(p for p in k8s.glob("*.yaml") if p.name != "kustomization.yaml")
    assert {p.name for p in manifests} == set(kustomization["resources"]), "nothing unlisted"
    done = run(BIN / "kubernetes-validate", "--strict", "--quiet", *manifests)
    assert done.returncode == 0, f"{name}:\n{done.stdout}{done.stderr}"

    built = kustomize(project)
    output = tmp_path / "built.yaml"
    output.write_text(yaml.safe_dump_all(built))
    done = run(BIN / "kubernetes-validate", "--strict", "--quiet", "-k", OLDEST_KUBERNETES, output)
    assert done.returncode == 0, f"{name} on Kubernetes {OLDEST_KUBERNETES}:\n{done.stdout}"

    kinds = sorted(document["kind"] for document in built)
    expected = ["ConfigMap", "Deployment", "Service"]
    if horizontal(answers):
        expected += ["HorizontalPodAutoscaler", "PodDisruptionBudget"]
    if queue_on_redis(answers):
        expected += ["Deployment"]
    assert kinds == sorted(expected), name
    for document in built:
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "my-service"
    deployments = {d["metadata"]["name"]: d for d in built if d["kind"] == "Deployment"}
    web = deployments["my-service"]
    assert ("my-service-worker" in deployments) == queue_on_redis(answers)
    assert web["spec"].get("replicas") == (None if horizontal(answers) else 1), name
    (container,) = [c for c in web["spec"]["template"]["spec"]["containers"] if c["name"] == "web"]
    assert container["image"] == "my-service:0.1.0", "kustomize sets the image tag"
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0


# -- the lock task ---------------------------------------------------------------


def avanzada_new(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [avanzada_bin(), "new", str(project), "--defaults", "-f", "sse"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_new_locks_the_dependencies_when_the_index_answers(
    tmp_path: Path, avanzada_home: Path
) -> None:
    project = tmp_path / "service"
    done = avanzada_new(project, dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Dependencies locked in uv.lock" in done.stdout
    lock = (project / "uv.lock").read_text()
    assert 'name = "fastapi"' in lock and 'name = "pytest"' in lock
    check = run(BIN / "uv", "lock", "--check", cwd=project)
    assert check.returncode == 0, check.stderr


def test_new_without_the_index_skips_the_lock_with_a_message(
    tmp_path: Path, avanzada_home: Path
) -> None:
    env = {
        **os.environ,
        # An empty cache and no network: uv lock cannot resolve anything.
        "UV_OFFLINE": "1",
        "UV_CACHE_DIR": str(tmp_path / "empty-uv-cache"),
    }
    project = tmp_path / "service"
    done = avanzada_new(project, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "`uv lock` failed (is the package index reachable?): skipped" in done.stdout
    assert "the first `uv sync` will write uv.lock" in done.stdout
    assert not (project / "uv.lock").exists()
    assert (project / "pyproject.toml").is_file()


def test_copy_without_uv_skips_the_lock_with_a_message(tmp_path: Path) -> None:
    """Plain `copier copy --trust` where neither copier's Python nor PATH has uv."""
    path = os.pathsep.join(["/usr/bin", "/bin"])
    if shutil.which("uv", path=path):
        pytest.skip("uv is installed system-wide here")
    # A `uv` module that fails to import, as when copier's environment lacks it.
    shadow = tmp_path / "no-uv" / "uv"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("uv is not installed")\n')
    env = {**os.environ, "PYTHONPATH": str(shadow.parent), "PATH": path}
    project = tmp_path / "service"
    done = subprocess.run(
        [BIN / "copier", "copy", "--trust", "--defaults", "--quiet", REPO_ROOT, project],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "uv is not installed: skipped `uv lock`" in done.stdout
    assert not (project / "uv.lock").exists()
    assert (project / "justfile").is_file()
