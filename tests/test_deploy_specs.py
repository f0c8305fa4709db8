"""Deployment specs (infra/docker, infra/compose, infra/kubernetes, infra/emr) checked without running them.

Each spec parses and has the fields its tool requires; every job file and environment it names exists (and the
environment loads); the specs agree with each other, with conf/env and with the pins of pyproject.toml and
infra/jvm/pom.xml; no spec names a host other than loopback or holds a secret. Pure Python: no Spark, no Docker.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
import shlex
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.config import ENV_CONF_DIR, ENV_LOCAL_ROOT, ENV_METASTORE_URL, ENV_STORAGE_ROOT, load_settings

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
COMPOSE_DIR = INFRA / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
KUBERNETES = INFRA / "kubernetes"
EMR = INFRA / "emr"
SPEC_DIRS = (INFRA / "docker", COMPOSE_DIR, KUBERNETES, EMR)
JOBS = ROOT / "jobs"
OPERATOR_API = "sparkoperator.k8s.io/v1beta2"

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PINS = dict(d.split("==", 1) for d in PYPROJECT["project"]["dependencies"])
VERSION = PYPROJECT["project"]["version"]
POM = ET.parse(INFRA / "jvm" / "pom.xml").getroot()
POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


# --------------------------------------------------------------------------------------------------
# reading the specs


def git_ignored(path: Path) -> bool:
    """True for a file the repository's .gitignore keeps out (a deployer's own .env): not a spec."""
    relative = path.relative_to(ROOT).as_posix()
    patterns = [p.strip() for p in (ROOT / ".gitignore").read_text().splitlines() if p.strip() and p[0] != "#"]
    return any(fnmatch.fnmatch(relative, p.lstrip("/")) for p in patterns)


def spec_files() -> list[Path]:
    """Every file of the deployment specs, and the conf/env overlays they name."""
    files = [p for d in SPEC_DIRS for p in sorted(d.rglob("*")) if p.is_file() and not git_ignored(p)]
    return files + [ROOT / "conf" / "env" / f"{env}.yaml" for env in sorted(named_envs())]


def load_spec(path: Path) -> list[Any]:
    """The documents of a YAML, JSON or XML spec."""
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        return [d for d in yaml.safe_load_all(text) if d is not None]
    if path.suffix == ".json":
        return [json.loads(text)]
    if path.suffix == ".xml":
        return [ET.fromstring(text)]
    raise ValueError(f"{path}: not a structured spec")


def kubernetes_objects() -> list[tuple[Path, dict[str, Any]]]:
    """The resources kustomization.yaml lists, each with its file."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return [(KUBERNETES / r, doc) for r in kustomization["resources"] for doc in load_spec(KUBERNETES / r)]


def of_kind(kind: str) -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path, doc in kubernetes_objects() if doc["kind"] == kind]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def emr_job() -> dict[str, Any]:
    return json.loads((EMR / "start-job-run.json").read_text())


def env_pairs(node: Any) -> Iterator[str]:
    """Every `--env NAME` in a document: adjacent list items, or inside one string."""
    if isinstance(node, list):
        for first, second in itertools.pairwise(node):
            if first == "--env" and isinstance(second, str):
                yield second
        for item in node:
            yield from env_pairs(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from env_pairs(value)
    elif isinstance(node, str):
        yield from re.findall(r"--env[= ]+([\w-]+)", node)


def named_envs() -> set[str]:
    """The conf/env environments the specs run with."""
    found: set[str] = set()
    for directory in SPEC_DIRS:
        for path in directory.rglob("*"):
            if not path.is_file() or git_ignored(path):
                continue
            if path.suffix in (".yaml", ".yml", ".json"):
                for doc in load_spec(path):
                    found |= set(env_pairs(doc))
            found |= set(re.findall(r"--env[= ]+([\w-]+)", path.read_text()))
    return found


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load conf exactly as shipped: no overrides from this shell."""
    for variable in (ENV_CONF_DIR, ENV_STORAGE_ROOT, ENV_LOCAL_ROOT, ENV_METASTORE_URL, "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)


# --------------------------------------------------------------------------------------------------
# the Dockerfile


@dataclass
class Stage:
    image: str
    name: str | None
    written: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages(path: Path) -> list[Stage]:
    """FROM-separated stages with their instructions (continuations joined, comments dropped, ARGs substituted)."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            written = next(w for w in rest.split() if not w.startswith("--"))
            words = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), rest).split()
            image = next((w for w in words if not w.startswith("--") and w != "AS"), "")
            name = words[words.index("AS") + 1] if "AS" in words else None
            stages.append(Stage(image=image, name=name, written=written))
        else:
            stages[-1].instructions.append((keyword, rest))
    return stages


def copies(stage: Stage) -> list[tuple[str | None, list[str], str]]:
    """(from, sources, destination) of each COPY of a stage."""
    found = []
    for keyword, rest in stage.instructions:
        if keyword == "COPY":
            words = shlex.split(rest)
            source = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            paths = [w for w in words if not w.startswith("--")]
            found.append((source, paths[:-1], paths[-1]))
    return found


def final_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage.instructions:
        if keyword == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                env[name] = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), m.group(0)), value)
    return env


def dockerignored(relative: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and p[0] != "#"]
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, p) for p in patterns for prefix in prefixes)


def image_to_repo(image_path: str) -> Path | None:
    """The repository file that the project image holds at `image_path` (copied from the build context), if any."""
    runtime = dockerfile_stages(DOCKERFILE)[-1]
    for source, paths, destination in copies(runtime):
        if source is None and len(paths) == 1 and image_path.startswith(destination.rstrip("/") + "/"):
            return ROOT / paths[0] / image_path[len(destination.rstrip("/")) + 1 :]
    return None


def short_name(image: str) -> bool:
    """An image named without a registry host (the first path part of a host has a dot or a port, or is localhost)."""
    first = image.split("/", maxsplit=1)[0]
    return "/" not in image or not ("." in first or ":" in first or first == "localhost")


def test_dockerfile_base_images_are_short_names_with_java_17_and_python_311() -> None:
    stages = dockerfile_stages(DOCKERFILE)
    names = {s.name for s in stages if s.name}
    images = [s.image for s in stages if s.image not in names]
    assert images, "no base image"
    for image in images:
        assert short_name(image), f"{image}: base images are named without a registry host"
        assert ":" in image, f"{image}: pin a tag"
    javas = [int(v) for image in images for v in re.findall(r"(?:temurin|openjdk|jdk|jre)-?(\d+)", image)]
    javas += [int(v) for image in images for v in re.findall(r":(\d+)-(?:jre|jdk)", image)]
    assert javas and set(javas) == {17}, f"Java majors of the base images: {javas}"
    build_release = re.search(r"--release (\d+)", (INFRA / "jvm" / "build.sh").read_text())
    assert build_release and int(build_release.group(1)) == 17, "infra/jvm/build.sh compiles for another Java"
    pythons = [re.match(r"python:(\d+\.\d+)", i) for i in images if i.startswith("python:")]
    assert pythons and {m.group(1) for m in pythons if m} == {"3.11"}
    assert "3.11" in PYPROJECT["project"]["requires-python"]


def test_dockerfile_copies_only_what_exists_and_runs_as_a_user() -> None:
    stages = dockerfile_stages(DOCKERFILE)
    names = [s.name for s in stages]
    for index, stage in enumerate(stages):
        for source, paths, _destination in copies(stage):
            if source is not None:
                assert source in names[:index], f"COPY --from={source}: no earlier stage of that name"
                continue
            for path in paths:
                assert (ROOT / path).exists(), f"COPY {path}: not in the repository"
                assert not dockerignored(path), f"COPY {path}: .dockerignore leaves it out of the build context"
    runtime = stages[-1]
    users = [rest for keyword, rest in runtime.instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    entrypoint = next(json.loads(rest) for keyword, rest in runtime.instructions if keyword == "ENTRYPOINT")
    destinations = {destination for _, _, destination in copies(runtime)}
    assert set(entrypoint) & destinations, f"ENTRYPOINT {entrypoint} runs no script the image copies"


def test_dockerfile_environment_points_at_the_installed_spark_java_and_python() -> None:
    stages = dockerfile_stages(DOCKERFILE)
    runtime = stages[-1]
    env = final_env(runtime)
    python = re.match(r"python:(\d+\.\d+)", runtime.image)
    assert python, "the runtime stage starts from the Python image"
    venv = Path(env["PYSPARK_PYTHON"]).parent.parent
    assert env["SPARK_HOME"] == f"{venv}/lib/python{python.group(1)}/site-packages/pyspark"
    assert env.get("PYSPARK_PYTHON", "").startswith(str(venv)), "PYSPARK_PYTHON must be the venv's python"
    java_stages = {s.name for s in stages if "temurin-17" in s.image or s.image.startswith("eclipse-temurin:17")}
    java_home = [dest for source, _, dest in copies(runtime) if source in java_stages]
    assert java_home == [env["JAVA_HOME"]], "JAVA_HOME must be the Java 17 the runtime copies in"
    assert env["LAKEHOUSE_CONF_DIR"] in {dest for _, _, dest in copies(runtime)}
    commands = [c.strip() for s in stages for k, rest in s.instructions if k == "RUN" for c in re.split(r"&&|;", rest)]
    assert any("pip wheel" in c for c in commands), "the image builds the project's wheel"
    assert any(re.search(r"pip install \S*lakehouse-\*\.whl", c) for c in commands), "and installs it with its pins"
    installs = [c for c in commands if "pip install" in c]
    assert not [c for c in installs if re.search(r"\bpyspark\b", c)], "pyspark comes from the wheel's pins only"


def test_dockerfile_resolves_every_jar_execution_of_the_pom() -> None:
    runs = " ".join(rest for s in dockerfile_stages(DOCKERFILE) for keyword, rest in s.instructions if keyword == "RUN")
    pom_executions = {e.text for e in POM.findall(".//m:execution/m:id", POM_NS)}
    used = set(re.findall(r"dependency:copy-dependencies@(\w+)", runs))
    assert "-f infra/jvm/pom.xml" in runs
    assert used == pom_executions, f"the image resolves {sorted(used)}, the pom defines {sorted(pom_executions)}"


# --------------------------------------------------------------------------------------------------
# everything a spec names exists


def test_every_spec_parses() -> None:
    structured = [p for p in spec_files() if p.suffix in (".yaml", ".yml", ".json", ".xml")]
    for path in structured:
        assert load_spec(path), f"{path} is empty"
    expected = {COMPOSE, KUBERNETES / "kustomization.yaml", EMR / "start-job-run.json", EMR / "create-application.json"}
    assert expected <= set(structured)


def test_every_named_job_file_exists() -> None:
    named = set()
    for path in spec_files():
        named |= set(re.findall(r"\bjobs/(\w+)\.py\b", path.read_text()))
    assert named, "no spec names a job"
    missing = sorted(n for n in named if not (JOBS / f"{n}.py").is_file())
    assert not missing, f"specs name jobs that do not exist: {missing}"


@pytest.mark.usefixtures("clean_env")
def test_every_named_environment_exists_and_loads() -> None:
    envs = named_envs()
    assert {"compose", "kubernetes", "emr"} <= envs, f"environments named: {sorted(envs)}"
    for env in sorted(envs):
        assert (ROOT / "conf" / "env" / f"{env}.yaml").is_file(), f"--env {env}: no conf/env/{env}.yaml"
        assert load_settings(env).env == env


def test_every_path_into_the_image_exists() -> None:
    """/opt/lakehouse/... paths the specs use are copied into the project image from files that exist."""
    image_dirs = {d for _, _, d in copies(dockerfile_stages(DOCKERFILE)[-1])}
    image_dirs |= set(re.findall(r"/opt/lakehouse/\w+", DOCKERFILE.read_text()))
    for path in spec_files():
        for used in re.findall(r"/opt/lakehouse/[\w./*-]*\w", path.read_text()):
            top = "/".join(used.split("/")[:4])
            assert top in image_dirs, f"{path.name}: {used} is not in the image"
            repo = image_to_repo(used)
            if repo is not None and "*" not in used:
                assert repo.exists(), f"{path.name}: {used} would be {repo}, which does not exist"


# --------------------------------------------------------------------------------------------------
# Kubernetes


CRON_FIELDS = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, {m: i + 1 for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])}),
    (0, 7, {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}))  # fmt: skip


def valid_cron(expression: str) -> bool:
    """A standard 5-field cron expression: minute hour day-of-month month day-of-week, each a list of *, values,
    ranges and steps within its bounds (month and weekday names allowed)."""
    fields = expression.split()
    if len(fields) != 5:
        return False

    def value(text: str, low: int, high: int, names: dict[str, int]) -> int | None:
        number = names.get(text.upper()) if text.upper() in names else (int(text) if text.isdigit() else None)
        return number if number is not None and low <= number <= high else None

    for text, (low, high, names) in zip(fields, CRON_FIELDS, strict=True):
        for item in text.split(","):
            body, _, step = item.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return False
            if body == "*":
                continue
            start, _, end = body.partition("-")
            first = value(start, low, high, names)
            last = value(end, low, high, names) if end else first
            if first is None or last is None or last < first:
                return False
    return True


@pytest.mark.parametrize(
    ("expression", "valid"),
    [
        ("0 6 1 10 *", True),
        ("*/15 0-5,22 * JAN-MAR mon-fri", True),
        ("0 6 1 13 *", False),
        ("60 * * * *", False),
        ("0 6 1 10", False),
        ("0 6 * * * *", False),
        ("0 6 31-1 * *", False),
        ("*/0 * * * *", False),
        ("@yearly", False),
    ],
)
def test_cron_check(expression: str, valid: bool) -> None:
    assert valid_cron(expression) is valid


MEMORY = re.compile(r"(?i)\d+[kmgt]b?")


def driver_identity() -> str:
    """The service account the RoleBinding gives the driver role to (checked below)."""
    (_, binding), *_ = of_kind("RoleBinding")
    return str(binding["subjects"][0]["name"])


def check_application_spec(spec: dict[str, Any], where: str) -> str:
    """Assert a SparkApplication spec has what the operator requires and the lakehouse needs; return its job."""
    assert spec.get("type") == "Python", f"{where}: spec.type must be Python"
    assert spec.get("mode") == "cluster", f"{where}: spec.mode must be cluster"
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    image_names = {i["name"] for i in kustomization["images"]}
    image = str(spec.get("image", ""))
    assert image.partition(":")[0] in image_names, f"{where}: image {image!r} is not the one kustomization sets"
    assert image.partition(":")[2] == VERSION, f"{where}: image tag {image!r}, project version {VERSION}"
    assert spec.get("sparkVersion") == PINS["pyspark"], f"{where}: sparkVersion must be the pinned {PINS['pyspark']}"
    main = str(spec.get("mainApplicationFile", ""))
    assert main.startswith("local:///"), f"{where}: the job file is in the image (local://)"
    repo = image_to_repo(main.removeprefix("local://"))
    assert repo is not None and repo.parent == JOBS and repo.is_file(), f"{where}: {main} is no file of jobs/"
    arguments = spec.get("arguments", [])
    assert "--env" in arguments, f"{where}: no --env argument"
    for role in ("driver", "executor"):
        pod = spec.get(role, {})
        assert isinstance(pod.get("cores"), int) and pod["cores"] > 0, f"{where}: {role}.cores"
        assert MEMORY.fullmatch(str(pod.get("memory", ""))), f"{where}: {role}.memory must be like 8g"
        if "memoryOverhead" in pod:
            assert MEMORY.fullmatch(str(pod["memoryOverhead"])), f"{where}: {role}.memoryOverhead"
    assert spec["driver"].get("serviceAccount") == driver_identity(), f"{where}: the driver's service account"
    assert spec.get("restartPolicy", {}).get("type") in ("Never", "OnFailure", "Always")
    class_path = spec.get("sparkConf", {}).get("spark.driver.extraClassPath", "")
    assert "/opt/lakehouse/jars/*" in class_path.split(":"), f"{where}: Delta's jars on the driver's class path"
    return repo.stem


def env_names(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in pod.get("env", [])}


def test_every_kubernetes_file_is_a_listed_resource() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    listed = {KUBERNETES / r for r in kustomization["resources"]}
    assert all(p.is_file() for p in listed)
    for config in kustomization.get("configurations", []):
        assert (KUBERNETES / config).is_file()
    not_resources = {KUBERNETES / "kustomization.yaml", *(KUBERNETES / c for c in kustomization["configurations"])}
    on_disk = {p for p in KUBERNETES.rglob("*.yaml") if p not in not_resources}
    assert on_disk == listed, f"YAML that kustomization.yaml does not list: {sorted(map(str, on_disk - listed))}"
    for path, doc in kubernetes_objects():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path}: not a Kubernetes object"
        assert doc["kind"] != "Secret", f"{path}: Secrets are created by the deployer, never written here"


def test_every_job_has_a_spark_application() -> None:
    applications = of_kind("SparkApplication")
    jobs = {}
    for path, doc in applications:
        assert doc["apiVersion"] == OPERATOR_API, f"{path}: apiVersion"
        name = doc["metadata"].get("name", "")
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, f"{path}: metadata.name"
        job = check_application_spec(doc["spec"], str(path))
        assert doc["metadata"]["labels"]["c2c-lakehouse/stage"] == job, f"{path}: label c2c-lakehouse/stage"
        jobs[job] = path
    assert set(jobs) == {p.stem for p in JOBS.glob("*.py")}, "one SparkApplication per jobs/*.py"


@pytest.mark.usefixtures("clean_env")
def test_only_the_keyed_stages_get_the_hmac_key() -> None:
    from lakehouse.cli import KEYED_STAGES
    from lakehouse.pipeline import STAGES

    for path, doc in of_kind("SparkApplication"):
        spec = doc["spec"]
        job = Path(spec["mainApplicationFile"]).stem
        arguments = spec["arguments"]
        key_variable = load_settings(arguments[arguments.index("--env") + 1]).security.hmac_key_env
        runs = set(STAGES) if job == "pipeline" else {job} & set(STAGES)
        driver = env_names(spec["driver"])
        if runs & KEYED_STAGES:
            reference = driver.get(key_variable, {}).get("valueFrom", {}).get("secretKeyRef", {})
            assert reference.get("name") and reference.get("key"), f"{path}: {key_variable} from a Secret"
        else:
            assert key_variable not in driver, f"{path}: the {job} job does not need the HMAC key"
        assert key_variable not in env_names(spec["executor"]), f"{path}: executors never get the key"
        config_maps = [s["configMapRef"]["name"] for s in spec["driver"].get("envFrom", []) if "configMapRef" in s]
        assert config_maps == ["lakehouse-endpoints"], f"{path}: the driver reads the deployer's endpoints"


def test_the_yearly_pipeline_schedule() -> None:
    schedules = of_kind("ScheduledSparkApplication")
    assert len(schedules) == 1
    path, doc = schedules[0]
    assert doc["apiVersion"] == OPERATOR_API
    name = doc["metadata"]["name"]
    assert len(name) <= 52, f"{path}: the operator appends a timestamp to each run's name (63 characters at most)"
    spec = doc["spec"]
    assert valid_cron(spec["schedule"]), f"{path}: schedule {spec['schedule']!r} is no 5-field cron expression"
    month, weekday = spec["schedule"].split()[3], spec["schedule"].split()[4]
    assert month != "*" and weekday == "*", f"{path}: a yearly schedule names its month"
    assert spec.get("concurrencyPolicy") == "Forbid", f"{path}: two pipeline runs at once on one lakehouse"
    assert check_application_spec(spec["template"], f"{path} template") == "pipeline"
    (_, one_off), *_ = [(p, d) for p, d in of_kind("SparkApplication") if d["metadata"]["name"] == "c2c-pipeline"]
    expected = {k: v for k, v in one_off["spec"].items() if k != "timeToLiveSeconds"}
    assert spec["template"] == expected, f"{path}: the template drifted from jobs/pipeline.yaml"


def test_the_driver_role() -> None:
    (_, account), *_ = of_kind("ServiceAccount")
    (_, role), *_ = of_kind("Role")
    (_, binding), *_ = of_kind("RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"]}]
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    needed = {(r, v) for r in ("pods", "services", "configmaps") for v in ("create", "get", "list", "watch", "delete")}
    assert needed <= granted, f"the driver cannot manage its executors: {sorted(needed - granted)}"


# --------------------------------------------------------------------------------------------------
# the local stack (compose)


def interpolated(text: str) -> list[tuple[str, str]]:
    """(variable, operator) of every ${...} compose interpolates ($$ escapes excluded)."""
    return re.findall(r"(?<!\$)\$\{(\w+)(:?[-?]|)", text)


def env_example() -> dict[str, str]:
    lines = (COMPOSE_DIR / ".env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


def command_option(service: dict[str, Any], option: str) -> str:
    command = service["command"]
    return str(command[command.index(option) + 1])


def test_compose_services_run_on_loopback_only() -> None:
    stack = compose()
    assert stack["services"]
    for name, service in stack["services"].items():
        assert "image" in service or "build" in service, f"{name}: no image and no build"
        assert service.get("network_mode") == "host", f"{name}: network_mode must be host"
        assert "ports" not in service, f"{name}: host networking publishes no ports; bind to 127.0.0.1 instead"
        build = service.get("build")
        if build:
            context = COMPOSE_DIR / build["context"]
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE.resolve()
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), f"{name}: mounts {source}, which does not exist"
            else:
                assert source in stack.get("volumes", {}), f"{name}: volume {source} is not declared"
        for dependency in service.get("depends_on", []):
            assert dependency in stack["services"], f"{name}: depends on unknown service {dependency}"
    image = stack["services"]["spark-master"]["image"]
    assert image.endswith(f":-{VERSION}}}"), f"the stack's default image tag must be the project version {VERSION}"


def test_compose_credentials_come_from_the_env_file() -> None:
    text = COMPOSE.read_text()
    declared = env_example()
    for variable, operator in interpolated(text):
        if operator in ("", ":?", "?"):
            assert variable in declared, f"compose.yaml uses ${{{variable}}}, which .env.example does not declare"
    used = {variable for variable, _ in interpolated(text)}
    assert set(declared) <= used, f".env.example declares what compose.yaml never uses: {set(declared) - used}"
    for variable, value in declared.items():
        if SECRET_NAME.search(variable):
            assert value == "", f".env.example: {variable} must stay empty (init-env fills it)"
    assert git_ignored(COMPOSE_DIR / ".env"), "infra/compose/.env must be git-ignored"
    assert (COMPOSE_DIR / "init-env").stat().st_mode & 0o111, "infra/compose/init-env must be executable"


def test_compose_commands_exist_in_their_images() -> None:
    """The project image's services run its console scripts, Spark's and MLflow's, or a script the image copies."""
    runtime = dockerfile_stages(DOCKERFILE)[-1]
    path = final_env(runtime)["PATH"].split(":")
    copied = {Path(dest).name for _, _, dest in copies(runtime) if str(Path(dest).parent) in path}
    provided = set(PYPROJECT["project"]["scripts"]) | {"spark-class", "spark-submit", "mlflow"} | copied
    for name, service in compose()["services"].items():
        if "build" in service:
            assert service["command"][0] in provided, f"{name}: {service['command'][0]} is not in the image"


def test_compose_metastore_gets_its_jdbc_driver() -> None:
    """The metastore's aux class path is the volume the one-shot Maven service fills from hive/pom.xml."""
    services = compose()["services"]
    metastore, resolver = services["hive-metastore"], services["hive-jdbc-driver"]
    mounts = {target: source for source, target, *_ in (v.split(":") for v in metastore["volumes"])}
    volume = mounts[metastore["environment"]["HIVE_AUX_JARS_PATH"]]
    output = next(a.split("=", 1)[1] for a in resolver["command"] if a.startswith("-DoutputDirectory="))
    assert f"{volume}:{output}" in resolver["volumes"], "the driver lands in another volume"
    pom = next(v.split(":")[0] for v in resolver["volumes"] if v.split(":")[1].endswith("pom.xml"))
    dependencies = ET.parse(COMPOSE_DIR / pom).getroot().findall("dependencies/dependency/artifactId")
    assert [d.text for d in dependencies] == ["postgresql"]
    assert "org.postgresql.Driver" in metastore["environment"]["SERVICE_OPTS"]
    dependency = metastore["depends_on"]["hive-jdbc-driver"]
    assert dependency == {"condition": "service_completed_successfully"}


@pytest.mark.usefixtures("clean_env")
def test_compose_environment_points_at_the_stack() -> None:
    services = compose()["services"]
    conf = load_settings("compose")
    s3 = command_option(services["s3"], "--address")
    assert conf.s3.endpoint == f"http://{s3}", "conf/env/compose.yaml s3.endpoint is not the stack's S3 address"
    assert conf.s3.path_style
    master = services["spark-master"]
    expected_master = f"spark://{command_option(master, '--host')}:{command_option(master, '--port')}"
    assert conf.spark.master == expected_master
    for worker in ("spark-worker-1", "spark-worker-2"):
        assert expected_master in services[worker]["command"], f"{worker} joins another master"
    metastore = services["hive-metastore"]["environment"]
    assert conf.spark.conf["spark.hadoop.hive.metastore.uris"] == f"thrift://127.0.0.1:{metastore['METASTORE_PORT']}"
    assert "-Dhive.metastore.thrift.bind.host=127.0.0.1" in metastore["SERVICE_OPTS"]
    mlflow = services["mlflow"]
    tracking = f"http://{command_option(mlflow, '--host')}:{command_option(mlflow, '--port')}"
    assert services["lakehouse"]["environment"]["MLFLOW_TRACKING_URI"] == tracking
    setup = " ".join(services["s3-setup"]["command"])
    made = set(re.findall(r"stack/([\w-]+)", setup))
    wanted = {conf.storage.root, conf.storage.landing, command_option(mlflow, "--artifacts-destination")}
    buckets = {re.match(r"s3a?://([\w-]+)", uri).group(1) for uri in wanted}  # type: ignore[union-attr]
    assert buckets <= made, f"the stack does not create buckets {buckets - made}"


# --------------------------------------------------------------------------------------------------
# EMR Serverless


@pytest.mark.usefixtures("clean_env")
def test_emr_job_definition() -> None:
    import botocore.session
    from botocore.validate import validate_parameters

    from lakehouse.session import PROJECT_JAR

    model = botocore.session.get_session().get_service_model("emr-serverless")
    job = emr_job()
    for request, operation in ((job, "StartJobRun"), (json.loads((EMR / "create-application.json").read_text()),
                                                        "CreateApplication")):  # fmt: skip
        # the CLI fills clientToken (an idempotency token) itself
        validate_parameters({"clientToken": "cli", **request}, model.operation_model(operation).input_shape)
    assert re.fullmatch(r"<\w+>", job["applicationId"]), "applicationId is a placeholder"
    assert re.fullmatch(r"arn:aws:iam::<\w+>:role/<\w+>", job["executionRoleArn"]), "executionRoleArn is a placeholder"
    submit = job["jobDriver"]["sparkSubmit"]
    entry = re.fullmatch(r"s3://[\w.-]+/(?:[\w.-]+/)*jobs/(\w+)\.py", submit["entryPoint"])
    assert entry and (JOBS / f"{entry.group(1)}.py").is_file(), "entryPoint: an s3:// copy of a file of jobs/"
    arguments = submit["entryPointArguments"]
    env = arguments[arguments.index("--env") + 1]
    conf = load_settings(env)
    parameters = shlex.split(submit["sparkSubmitParameters"])
    jars = {Path(j.removeprefix("local://")) for j in parameters[parameters.index("--jars") + 1].split(",")}
    delta = POM.find("m:properties/m:delta.version", POM_NS)
    assert delta is not None and delta.text == PINS["delta-spark"], "pom's Delta and pyproject's delta-spark differ"
    scala = POM.find("m:properties/m:scala.binary", POM_NS)
    assert scala is not None
    expected = {f"delta-spark_{scala.text}-{delta.text}.jar", f"delta-storage-{delta.text}.jar", PROJECT_JAR}
    assert {j.name for j in jars} == expected, f"--jars {sorted(j.name for j in jars)}"
    image = (EMR / "Dockerfile").read_text()
    copied = {dest for s in dockerfile_stages(EMR / "Dockerfile") for _, _, dest in copies(s)}
    assert {f"{j.parent}/" for j in jars} <= copied, "the jars are where the EMR image puts them"
    settings_conf = dict(p.split("=", 1) for p in parameters if "=" in p and not p.startswith("-"))
    for variable in ("LAKEHOUSE_CONF_DIR", "LAKEHOUSE_JARS_DIR"):
        value = settings_conf[f"spark.emr-serverless.driverEnv.{variable}"]
        assert f"{variable}={value}" in image, f"{variable}: the job and the EMR image disagree"
    python = settings_conf["spark.emr-serverless.driverEnv.PYSPARK_PYTHON"]
    assert settings_conf["spark.executorEnv.PYSPARK_PYTHON"] == python
    assert Path(python).name in image, f"{python}: the EMR image does not install it"
    defaults = next(c["properties"] for c in job["configurationOverrides"]["applicationConfiguration"]
                    if c["classification"] == "spark-defaults")  # fmt: skip
    factory = "spark.hadoop.hive.metastore.client.factory.class"
    assert defaults[factory] == conf.spark.conf[factory], "the job and conf/env/emr.yaml name different catalogs"
    assert "Glue" in defaults[factory]
    key = defaults[f"spark.emr-serverless.driverEnv.{conf.security.hmac_key_env}"]
    assert key.startswith("EMR.secret@"), "the HMAC key comes from Secrets Manager"
    assert defaults["spark.emr-serverless.driverEnv.MLFLOW_TRACKING_URI"], "linkage runs need an MLflow server"
    logs = job["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"]["logUri"]
    assert logs.startswith("s3://")


def test_emr_image_ends_as_the_emr_user() -> None:
    stages = dockerfile_stages(EMR / "Dockerfile")
    users = [rest for keyword, rest in stages[-1].instructions if keyword == "USER"]
    assert users[-1] == "hadoop:hadoop", "EMR Serverless images must end as hadoop:hadoop"
    assert stages[-1].written == "${EMR_BASE_IMAGE}" and stages[-1].image == "", "the base image is a build argument"
    assert stages[0].image == f"c2c-lakehouse:{VERSION}", "the project image of this version"


# --------------------------------------------------------------------------------------------------
# no host but loopback, no secret

LOOPBACK = {"127.0.0.1", "localhost"}
BUCKET_SCHEMES = {"s3", "s3a", "s3n", "gs"}
URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://([^/\s\"'`,;)]*)")
HOST_PORT = re.compile(r"(?<![\w/.:@-])([a-z][\w.-]*|\d{1,3}(?:\.\d{1,3}){3}):(\d{2,5})(?![\w.])", re.IGNORECASE)
DOMAIN = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|dev|cloud|gov|edu|us|internal|local|svc)\b(?![.\w])")
API_GROUPS = ("k8s.io", "kubernetes.io")
"""DNS-style names of Kubernetes API groups and label prefixes: identifiers, not hosts."""
PLACEHOLDER = re.compile(r"^[<$]|^\{")


def hosts_in(text: str) -> Iterator[str]:
    """Every host a text names: in URLs, as host:port, or as a DNS name."""
    for scheme, authority in URL.findall(text):
        host = authority.rpartition("@")[2]
        host = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
        if host and not PLACEHOLDER.search(host) and scheme.lower() not in BUCKET_SCHEMES:
            yield host
    for host, _port in HOST_PORT.findall(URL.sub(" ", text)):
        yield host
    for match in DOMAIN.finditer(text):
        if not match.group(0).endswith(API_GROUPS):
            yield match.group(0)


def test_host_scan_finds_hosts() -> None:
    text = (
        "thrift://metastore.prod.svc:9083 jdbc:postgresql://db.internal:5432/x http://user@10.0.0.5/ minio:9000 "
        "s3a://bucket/p local:///opt/x thrift://<metastore host>:9083 127.0.0.1:5432 sparkoperator.k8s.io/v1beta2 "
        "registry.example.com/team/image"
    )
    assert sorted(set(hosts_in(text)) - LOOPBACK) == [
        "10.0.0.5", "db.internal", "metastore.prod.svc", "minio", "registry.example.com",
    ]  # fmt: skip


def scannable(path: Path) -> Iterator[tuple[str, str]]:
    """(where, line) of a spec, comments included; image references (a base image, a compose image) left out."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if re.match(r"\s*(?:FROM\s|image:)", line):
            continue
        yield f"{path}:{number}", re.sub(r"--from=\S+", "", line)


def test_no_spec_names_a_host_but_loopback() -> None:
    for path in spec_files():
        assert "0.0.0.0" not in path.read_text(), f"{path}: listens on every interface"
        for where, text in scannable(path):
            foreign = sorted(set(hosts_in(text)) - LOOPBACK)
            assert not foreign, f"{where}: names host(s) {foreign}"


SECRET_NAME = re.compile(r"(?i)password|passwd|secret|token|hmac|private.?key|api.?key|credential")
SECRET_VALUE = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|-----BEGIN [A-Z ]*PRIVATE KEY-----|\b[0-9a-fA-F]{32,}\b")
ASSIGNMENT = re.compile(r"([\w.-]+)=(\S*)")
REFERENCE = re.compile(r"^[\"']?(?:\$|<|EMR\.secret@)")
"""A value that refers to a secret kept elsewhere: a variable, a placeholder, a Secrets Manager reference."""


def secret_literals(node: Any, key: str = "") -> Iterator[str]:
    """Secret-looking literals: a value under a secret-sounding name, or a value shaped like a key."""
    if isinstance(node, dict):
        if "name" in node and "value" in node and SECRET_NAME.search(str(node["name"])):
            yield f"{node['name']}={node['value']}"  # a container's env entry
        for k, v in node.items():
            yield from secret_literals(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from secret_literals(item, key)
    elif isinstance(node, str):
        if node and SECRET_NAME.search(key) and not REFERENCE.search(node):
            yield f"{key}: {node}"
        yield from text_secrets(node)


def text_secrets(text: str) -> Iterator[str]:
    for name, value in ASSIGNMENT.findall(text):
        if value and SECRET_NAME.search(name) and not REFERENCE.search(value):
            yield f"{name}={value}"
    yield from SECRET_VALUE.findall(text)


def test_secret_scan_finds_secrets() -> None:
    doc = {"env": [{"name": "DB_PASSWORD", "value": "hunter2"}], "MINIO_ROOT_PASSWORD": "s3cr3t",
           "opts": "-Djavax.jdo.option.ConnectionPassword=plain", "id": "AKIAABCDEFGHIJKLMNOP",
           "fine": "${HIVE_DB_PASSWORD:?x}", "ref": {"secretKeyRef": {"name": "lakehouse-hmac"}},
           "emr": {"LAKEHOUSE_HMAC_KEY": "EMR.secret@c2c/hmac"}}  # fmt: skip
    assert sorted(secret_literals(doc)) == sorted([
        "DB_PASSWORD=hunter2", "MINIO_ROOT_PASSWORD: s3cr3t", "-Djavax.jdo.option.ConnectionPassword=plain",
        "AKIAABCDEFGHIJKLMNOP",
    ])  # fmt: skip


def test_no_spec_holds_a_secret() -> None:
    for path in spec_files():
        found = list(text_secrets(path.read_text()))  # comments included
        if path.suffix in (".yaml", ".yml", ".json"):
            found += [s for doc in load_spec(path) for s in secret_literals(doc)]
        assert not found, f"{path}: secret-looking literal(s) {sorted(set(found))}"
