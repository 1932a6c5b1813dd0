"""deploy/: the container image, the KubeRay manifests and the Ray cluster-launcher config.

There is no Docker engine and no Kubernetes here, so the files are checked the way the tools
would read them:

* every YAML file under deploy/ and jobs/ parses;
* the KubeRay manifests validate against the KubeRay CRDs' ``openAPIV3Schema`` (read from
  ``../shared/kuberay/``, never copied into the project), with the Kubernetes extensions read
  as the API server reads them (see :func:`k8s_schema`);
* the cluster-launcher config validates against Ray's own ``ray-schema.json`` and Ray's
  ``prepare_config`` / ``validate_config``;
* every ``dynocc ...`` command the files run (entrypoints, setup and start commands, RUN lines) or
  show in their usage comments parses with :func:`dynocc.cli.build_parser`, and the job specs it
  names exist;
* the clusters can hold the actor pools of the specs they run (the engine refuses a pool larger
  than the workers that are up when a job starts);
* the Dockerfile builds FROM a CUDA image, installs the project, and runs as a non-root user.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

import dynocc
from dynocc.cli import build_parser
from dynocc.jobspec import load_job_spec
from support import REPO, SHARED

DEPLOY = REPO / "deploy"
KUBERAY_CRDS = SHARED / "kuberay"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
KUBERAY_MANIFESTS = sorted((DEPLOY / "kuberay").glob("*.yaml"))
LAUNCHER = DEPLOY / "cluster-launcher" / "aws-gpu.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *(REPO / "jobs").glob("*.yaml")])

CONTAINER_APP = "/home/ray/app"  # where deploy/Dockerfile puts jobs/


def test_the_deploy_files_exist():
    for rel in ("Dockerfile", "kuberay/raycluster.yaml", "kuberay/rayjob-mine.yaml", "kuberay/rayjob-train.yaml",
                "cluster-launcher/aws-gpu.yaml"):
        assert (DEPLOY / rel).is_file(), rel


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_file_parses(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


# --------------------------------------------------------------------------- the CRD schemas


def k8s_schema(node, *, _in_properties: bool = False):
    """A CRD's structural OpenAPI v3 schema as a JSON Schema (draft 7) that judges like the API server:

    * ``x-kubernetes-int-or-string: true`` -> an integer or a string;
    * ``nullable: true`` -> null is allowed too;
    * an object with ``properties`` and no ``additionalProperties`` is closed unless it has
      ``x-kubernetes-preserve-unknown-fields: true``: the API server prunes unknown fields, and
      ``kubectl apply`` (strict field validation, the default) refuses them, so a misspelt key is
      an error here as well;
    * the other ``x-kubernetes-*`` keys (list types, map types, and the CEL rules of
      ``x-kubernetes-validations``, which only constrain updates and fields these manifests do not
      use) are dropped.
    """
    if isinstance(node, list):
        return [k8s_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if _in_properties:  # a mapping of property names to schemas
        return {name: k8s_schema(schema) for name, schema in node.items()}
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in ("properties", "patternProperties"):
            out[key] = k8s_schema(value, _in_properties=True)
        elif key in ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf"):
            out[key] = k8s_schema(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in node and "additionalProperties" not in node \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


_CRDS: dict = {}


def crd(kind: str) -> dict:
    if kind not in _CRDS:
        path = KUBERAY_CRDS / CRD_FILES[kind]
        if not path.is_file():
            pytest.skip(f"the KubeRay CRDs are not at {KUBERAY_CRDS} (../shared/kuberay beside the repository)")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path) as f:
            _CRDS[kind] = yaml.load(f, Loader=loader)
    return _CRDS[kind]


def validate_k8s(manifest: dict) -> list[str]:
    """Every problem of one manifest against its CRD, as 'path: message' lines ([] if it is valid)."""
    import jsonschema

    kind = manifest.get("kind")
    if kind not in CRD_FILES:
        return [f"kind: {kind!r} is not one of {sorted(CRD_FILES)}"]
    definition = crd(kind)["spec"]
    group = definition["group"]
    versions = {v["name"]: v for v in definition["versions"] if v.get("served")}
    problems = []
    api = manifest.get("apiVersion", "")
    version = api.split("/", 1)[1] if api.startswith(group + "/") else None
    if version not in versions:
        return [f"apiVersion: {api!r} is not served (served: {[f'{group}/{v}' for v in versions]})"]
    if kind != definition["names"]["kind"]:
        problems.append(f"kind: {kind!r} is not {definition['names']['kind']!r}")
    name = manifest.get("metadata", {}).get("name", "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
        problems.append(f"metadata.name: {name!r} is not a DNS-1123 label")
    schema = k8s_schema(versions[version]["schema"]["openAPIV3Schema"])
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        problems.append(f"{where}: {error.message[:300]}")
    return problems


def load_manifest(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", KUBERAY_MANIFESTS, ids=lambda p: p.name)
def test_kuberay_manifests_validate_against_the_crds(path):
    problems = validate_k8s(load_manifest(path))
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_the_crd_validation_catches_mistakes():
    """The check is not vacuous: typical mistakes in a RayCluster are reported, by path."""
    good = load_manifest(DEPLOY / "kuberay/raycluster.yaml")
    assert validate_k8s(good) == []

    bad = json.loads(json.dumps(good))
    bad["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0        # must be a string
    bad["spec"]["workerGroupSpecs"][0]["maxReplica"] = 4                   # misspelt key
    del bad["spec"]["workerGroupSpecs"][1]["groupName"]                    # required
    bad["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = [1]
    problems = "\n".join(validate_k8s(bad))
    assert "headGroupSpec.rayStartParams.num-cpus" in problems
    assert "'maxReplica' was unexpected" in problems
    assert "'groupName' is a required property" in problems
    assert "resources.limits.cpu" in problems

    job = load_manifest(DEPLOY / "kuberay/rayjob-mine.yaml")
    job["spec"]["entrypoint"] = ["dynocc", "mine"]                          # must be a string
    job["apiVersion"] = "ray.io/v2"
    assert validate_k8s(job) and "not served" in validate_k8s(job)[0]
    job["apiVersion"] = "ray.io/v1"
    assert any(p.startswith("spec.entrypoint") for p in validate_k8s(job))


# --------------------------------------------------------------------------- dynocc commands


def _segments(command: str) -> list[list[str]]:
    """Simple shell commands of a command line: split at ``&&``, ``||``, ``;``, ``|``, parentheses."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segments, current = [], []
    for token in lexer:
        if token and set(token) <= set("&|;()"):
            segments.append(current)
            current = []
        else:
            current.append(token)
    segments.append(current)
    return [s for s in segments if s]


def dynocc_argvs(command: str) -> list[list[str]]:
    """The argument lists of every ``dynocc ...`` (or ``python -m dynocc.cli ...``) in a command line."""
    found = []
    for words in _segments(command):
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]  # NAME=value prefixes
        if not words:
            continue
        if Path(words[0]).name == "dynocc":
            found.append(words[1:])
        elif Path(words[0]).name.startswith("python") and words[1:3] == ["-m", "dynocc.cli"]:
            found.append(words[3:])
    return found


def parse_dynocc(argv: list[str]) -> None:
    """Parse like the CLI; AssertionError with argparse's message if it would refuse the command."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code not in (0, None):  # 0: --help / --version
            raise AssertionError(f"`dynocc {shlex.join(argv)}` does not parse: {err.getvalue().strip()}") from None


def _usage_lines(text: str) -> list[str]:
    """Commands shown in comments as usage (``#   dynocc ...``, indented by two spaces or more)."""
    return [m.group(1) for m in re.finditer(r"^\s*#\s{2,}(dynocc\s.*)$", text, re.M)]


def _commands_of_launcher(config: dict) -> list[str]:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    commands = [c for k in keys for c in config.get(k) or []]
    for node_type in config.get("available_node_types", {}).values():
        commands += [c for k in keys for c in node_type.get(k) or []]
    return commands


def _dockerfile_runs(text: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    return [line.strip()[4:] for line in joined.splitlines() if line.strip().startswith("RUN ")]


def deploy_commands() -> list[tuple[str, str]]:
    """(where, command line) of everything deploy/ runs or shows: entrypoints, setup and start
    commands, Dockerfile RUN lines, and usage comments in deploy/ and jobs/ files."""
    out = []
    for path in KUBERAY_MANIFESTS:
        manifest = load_manifest(path)
        if manifest.get("kind") == "RayJob":
            out.append((f"{path.name}: spec.entrypoint", manifest["spec"]["entrypoint"]))
    out += [(f"{LAUNCHER.name}: commands", c) for c in _commands_of_launcher(yaml.safe_load(LAUNCHER.read_text()))]
    out += [("Dockerfile: RUN", c) for c in _dockerfile_runs(DOCKERFILE.read_text())]
    for path in [*YAML_FILES, DOCKERFILE]:
        out += [(f"{path.relative_to(REPO)}: comment", c) for c in _usage_lines(path.read_text())]
    return out


def test_every_dynocc_command_in_deploy_parses_and_names_existing_specs():
    commands = deploy_commands()
    argvs = [(where, argv) for where, c in commands for argv in dynocc_argvs(c)]
    subcommands = {argv[0] for _, argv in argvs if argv and not argv[0].startswith("-")}
    # the entrypoints of both RayJobs and the usage comments are among them
    assert {"mine", "train", "submit"} <= subcommands, subcommands
    problems = []
    for where, argv in argvs:
        try:
            parse_dynocc(argv)
        except AssertionError as e:
            problems.append(f"{where}: {e}")
        for arg in argv:
            if arg.startswith("jobs/") and not (REPO / arg).is_file():
                problems.append(f"{where}: `dynocc {shlex.join(argv)}` names {arg}, which is not in the repository")
    assert not problems, "\n".join(problems)


def test_command_extraction():
    assert dynocc_argvs("cd /home/ray/app && dynocc mine --job jobs/a.yaml") == [["mine", "--job", "jobs/a.yaml"]]
    assert dynocc_argvs("(pip uninstall -y x || true); FOO=1 ~/venv/bin/dynocc --version | tee log") == [["--version"]]
    assert dynocc_argvs("python -m dynocc.cli stats 's3://b/o u t'  # comment") == [["stats", "s3://b/o u t"]]
    with pytest.raises(AssertionError, match="does not parse"):
        parse_dynocc(["mine", "--no-such-flag"])
    parse_dynocc(["--version"])


# --------------------------------------------------------------------------- cluster shapes


def _container(template: dict) -> dict:
    return template["spec"]["containers"][0]


def _limit(container: dict, resource: str) -> float:
    value = container.get("resources", {}).get("limits", {}).get(resource, 0)
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _cluster_specs() -> list[tuple[str, dict]]:
    out = []
    for path in KUBERAY_MANIFESTS:
        m = load_manifest(path)
        out.append((path.name, m["spec"] if m["kind"] == "RayCluster" else m["spec"]["rayClusterSpec"]))
    return out


@pytest.mark.parametrize("name,spec", _cluster_specs(), ids=[n for n, _ in _cluster_specs()])
def test_kuberay_clusters_cpu_head_autoscaling_gpu_workers(name, spec):
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["rayVersion"] == "2.60.0"
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # nothing scheduled on the head
    assert _limit(_container(head["template"]), "nvidia.com/gpu") == 0
    images = {_container(head["template"])["image"]}
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert "gpu" in groups
    for group in groups.values():
        assert 0 <= group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]
        container = _container(group["template"])
        images.add(container["image"])
        assert _limit(container, "cpu") >= 1
        assert group["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert _limit(_container(groups["gpu"]["template"]), "nvidia.com/gpu") >= 1
    assert any(t.get("key") == "nvidia.com/gpu" for t in groups["gpu"]["template"]["spec"].get("tolerations", []))
    if "cpu" in groups:
        assert _limit(_container(groups["cpu"]["template"]), "nvidia.com/gpu") == 0
    # one image everywhere, tagged with the project's version
    assert len(images) == 1, images
    assert images.pop().endswith(f"/dynocc:{dynocc.__version__}")


def _pool(spec_path: Path) -> tuple[float, float]:
    """CPUs and GPUs the actor pool of a mining spec asks for."""
    spec = load_job_spec(str(spec_path))
    actors = spec.actors or 1
    return actors * (spec.cpus_per_actor or 1.0), actors * (spec.gpus_per_actor or 0.0)


def test_the_rayjob_cluster_holds_the_spec_it_runs_from_the_start():
    """The engine sizes its pool against the workers that are up when the job starts: the
    RayJob's minimum workers must hold the spec's actors."""
    manifest = load_manifest(DEPLOY / "kuberay/rayjob-mine.yaml")
    (argv,) = dynocc_argvs(manifest["spec"]["entrypoint"])
    spec_path = REPO / argv[argv.index("--job") + 1]
    cpus, gpus = _pool(spec_path)
    cluster = manifest["spec"]["rayClusterSpec"]
    up_cpus = sum(g["minReplicas"] * _limit(_container(g["template"]), "cpu") for g in cluster["workerGroupSpecs"])
    up_gpus = sum(g["minReplicas"] * _limit(_container(g["template"]), "nvidia.com/gpu")
                  for g in cluster["workerGroupSpecs"])
    assert cpus <= up_cpus and gpus <= up_gpus, (cpus, gpus, up_cpus, up_gpus)
    assert manifest["spec"]["shutdownAfterJobFinishes"] is True

    # the training job: its Ray Train workers (one GPU each with --use-gpu) fit the GPU workers
    manifest = load_manifest(DEPLOY / "kuberay/rayjob-train.yaml")
    (argv,) = dynocc_argvs(manifest["spec"]["entrypoint"])
    args = build_parser().parse_args(argv)
    scale = yaml.safe_load((REPO / args.config).read_text()).get("scale", {})
    workers = args.workers or scale.get("workers", 1)
    use_gpu = args.use_gpu or scale.get("use_gpu", False)
    groups = manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    gpus_up = sum(g["minReplicas"] * _limit(_container(g["template"]), "nvidia.com/gpu") for g in groups)
    assert use_gpu and workers <= gpus_up, (workers, gpus_up)
    assert args.out.startswith("s3://")
    assert manifest["spec"]["shutdownAfterJobFinishes"] is True


def test_the_standing_cluster_holds_each_shipped_spec():
    cluster = load_manifest(DEPLOY / "kuberay/raycluster.yaml")["spec"]
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    for spec_path in sorted((REPO / "jobs").glob("mine_*.yaml")):
        cpus, gpus = _pool(spec_path)
        group = groups["gpu" if gpus > 0 else "cpu"]
        c = _container(group["template"])
        assert cpus <= group["minReplicas"] * _limit(c, "cpu"), spec_path.name
        assert gpus <= group["minReplicas"] * _limit(c, "nvidia.com/gpu"), spec_path.name


# --------------------------------------------------------------------------- cluster launcher


def test_cluster_launcher_config_is_valid_for_ray():
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(LAUNCHER.read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(prepare_config(config))  # what `ray up` runs first

    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("CPU") == 0 and not head["resources"].get("GPU")
    assert any("--num-cpus=0" in c for c in config["head_start_ray_commands"])
    gpu_types = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu_types and all(t.get("max_workers", 0) >= t.get("min_workers", 0) for t in types.values())
    # the setup commands install this project, synced by file_mounts
    mounts = {k: v for k, v in config["file_mounts"].items() if v == "."}
    (remote,) = mounts
    assert any(re.search(rf"pip install\b.*\s{re.escape(remote)}(\s|$)", c) for c in config["setup_commands"])
    assert any(dynocc_argvs(c) for c in config["setup_commands"])  # and check that it runs
    # the minimum workers hold the shipped specs' pools
    gpu_min = sum(t.get("min_workers", 0) * t["resources"].get("GPU", 0) for t in types.values())
    cpu_min = {name: t.get("min_workers", 0) * t["resources"].get("CPU", 0) for name, t in types.items()}
    for spec_path in sorted((REPO / "jobs").glob("mine_*.yaml")):
        cpus, gpus = _pool(spec_path)
        if gpus:
            assert gpus <= gpu_min, spec_path.name
        else:
            assert cpus <= max(cpu_min.values()), spec_path.name


# --------------------------------------------------------------------------- Dockerfile


def _dockerfile_stages(text: str) -> list[dict]:
    """Stages of a Dockerfile: FROM image (ARG defaults substituted) and its instructions."""
    joined = re.sub(r"\\\n", " ", text)
    args, stages = {}, []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif op == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), rest.split()[0])
            stages.append({"from": image, "name": rest.split()[-1] if " AS " in rest.upper() else None, "ops": []})
        elif stages:
            stages[-1]["ops"].append((op, rest.strip()))
    return stages


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        p = pattern[1:] if negate else pattern
        p = p.rstrip("/")
        if fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p):
            excluded = not negate
    return excluded


def test_dockerfile_cuda_base_project_installed_non_root():
    stages = _dockerfile_stages(DOCKERFILE.read_text())
    assert stages
    for stage in stages:  # every stage builds on a CUDA image
        assert re.search(r"(nvidia/cuda:|[-_]cu\d{2,3}\b|cuda)", stage["from"]), stage["from"]
    final = stages[-1]
    users = [rest for op, rest in final["ops"] if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    runs = " ".join(rest for op, rest in final["ops"] if op == "RUN")
    assert re.search(r"pip install\b[^&]*dynocc[^ ]*\.whl", runs) or re.search(r"pip install\b[^&]* \.(\s|$)", runs)
    builds = " ".join(rest for s in stages for op, rest in s["ops"] if op == "RUN")
    assert re.search(r"pip (wheel|install)\b.* \.(\s|$)", builds), "the project itself is built"
    assert not [rest for op, rest in final["ops"] if op == "ENTRYPOINT"], "KubeRay and `ray up` set the command"
    assert [rest for op, rest in final["ops"] if op == "CMD"]

    # COPY sources exist and the root .dockerignore keeps them in the build context
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for stage in stages:
        for op, rest in stage["ops"]:
            if op != "COPY" or "--from=" in rest:
                continue
            sources = [w for w in rest.split() if not w.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), source
                assert not _dockerignore_excludes(source.rstrip("/"), patterns), f".dockerignore drops {source}"
    for junk in (".venv", ".git", "bench_out", "tests"):
        assert _dockerignore_excludes(junk, patterns), junk
