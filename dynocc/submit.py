"""``dynocc submit JOB.yaml --address http://HEAD:8265``: run a job spec on a Ray cluster.

The job goes through the Ray Jobs API (:class:`ray.job_submission.JobSubmissionClient`, the
dashboard's port, 8265 by default). Its entrypoint is the command the spec is for:

* a mining spec (``command: mine`` / ``mine-stereo``, see :mod:`dynocc.jobspec`):
  ``dynocc mine --job SPEC`` / ``dynocc mine-stereo --job SPEC``;
* a training spec (the keys of the trainer's ``TrainConfig``, e.g. ``jobs/train_*.yaml``):
  ``dynocc train --config SPEC --out URL`` (``--out`` is required for a training spec).

``--out URL`` and ``--args ARG ...`` (last on the line) are appended to that command. The spec is
validated here first, and the whole command is parsed with the local ``dynocc`` parser, so a typo
costs no cluster time (exit code 2).

What is uploaded (the job's runtime environment ``working_dir``):

* by default only the spec file: the cluster runs the dynocc installed on it (the image built
  from ``deploy/Dockerfile``, or the cluster launcher's setup commands);
* ``--working-dir DIR``: DIR, with the spec inside it (``--working-dir .`` from the project root).
  If DIR is the dynocc project itself, its code is shipped too and runs instead of the installed
  one. Ray puts the working directory first on ``PYTHONPATH`` (for the driver and every worker),
  where the source folder ``dynocc/`` alone would hide the installed package without being
  complete (``factory/`` is installed as ``dynocc.factory``, by pyproject's ``package-dir``). So a
  copy of DIR is uploaded in which the source folders are assembled into one ``dynocc/`` package.
  (Not as ``py_modules`` beside DIR: Ray applies ``excludes`` to py_modules too, relative to each
  module, so excluding ``/factory/`` from DIR would drop ``dynocc/factory`` from the module.)
  The dependencies must already be on the cluster (``--pip SPEC`` adds packages, which needs
  ``virtualenv`` on the cluster, part of ``ray[default]``).

Environment: ``RAY_AUTH_MODE``, ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION`` and ``AWS_REGION`` are
passed through when set; ``--env NAME`` passes another one, ``--env NAME=VALUE`` sets one. Secrets
are not passed unless named: the runtime environment is visible in the dashboard. Give the
cluster its storage credentials the cluster's way (an instance role, a Kubernetes secret).

The job's logs are streamed to stdout until it ends. Exit code: 0 if the job SUCCEEDED, 1 if it
FAILED or was STOPPED (its status message on stderr), 2 for a bad spec or flags or an unreachable
cluster (nothing submitted), 130 when interrupted (the job keeps running). ``--no-wait`` returns 0
once the job is submitted and prints how to follow it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

from .factory.io.storage import is_local
from .config_loader import ConfigError, load_config
from .jobspec import load_job_spec, spec_kind

__all__ = ["add_parser", "cmd_submit", "build_submission", "Submission", "ENV_PASSTHROUGH", "UPLOAD_EXCLUDES"]

ENV_PASSTHROUGH = ("RAY_AUTH_MODE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION")

# Left out of a --working-dir upload (Ray also honours the folder's .gitignore files).
UPLOAD_EXCLUDES = [".git/", ".venv/", "venv/", "**/__pycache__/", "*.pyc", "*.egg-info/", ".pytest_cache/",
                   "bench_out/", "demo_out/", "build/", "dist/"]
_COPY_IGNORE = (".git", ".venv", "venv", "__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", "bench_out",
                "demo_out", "build", "dist")

# pyproject's [tool.setuptools] package-dir, for Pythons without tomllib (3.10).
_DEFAULT_PACKAGE_DIR = {"dynocc": "dynocc", "dynocc.factory": "factory", "dynocc.schemas": "schemas",
                        "dynocc.trainer": "trainer"}

_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")

_SUBMIT_TRIES = 8  # ~1 minute of retries while a fresh head's agent starts


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "submit", help="run a job spec on a Ray cluster (Ray Jobs API) and stream its logs",
        description="Submit JOB.yaml to a Ray cluster through the Ray Jobs API: a mining spec runs as "
                    "`dynocc mine --job JOB.yaml` (or mine-stereo), a training spec as `dynocc train "
                    "--config JOB.yaml`. Streams the job's logs; exit code 0 if it succeeded, 1 if it "
                    "failed or was stopped, 2 if nothing was submitted.")
    p.add_argument("spec", metavar="JOB.yaml", help="job spec (jobs/mine_*.yaml, jobs/train_*.yaml, or your own)")
    p.add_argument("--address", default=None,
                   help="the cluster's dashboard URL, e.g. http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, "
                        "else $RAY_ADDRESS when it is an http(s) URL)")
    p.add_argument("--working-dir", metavar="DIR", default=None,
                   help="upload DIR as the job's working directory, the spec inside it (e.g. '.' from the project "
                        "root: ships the project's code); default: upload the spec alone and run the dynocc "
                        "installed on the cluster")
    p.add_argument("--no-wait", action="store_true", help="return once submitted; do not stream the logs")
    p.add_argument("--env", action="append", default=[], metavar="NAME[=VALUE]",
                   help="environment variable for the job: NAME passes this shell's value, NAME=VALUE sets it "
                        f"(repeatable; passed when set: {', '.join(ENV_PASSTHROUGH)})")
    p.add_argument("--pip", action="append", default=[], metavar="SPEC",
                   help="extra pip requirement for the job's runtime environment (repeatable)")
    p.add_argument("--submission-id", default=None, help="job id to use (default: one made by Ray)")
    p.add_argument("--entrypoint-num-cpus", type=float, default=None,
                   help="CPUs reserved for the job's driver (default: none, so it may run on a 0-CPU head)")
    p.add_argument("--out", metavar="URL", default=None,
                   help="the job's output, passed on as --out: required for a training spec (dynocc train --out); "
                        "for a mining spec it overrides the spec's out")
    p.add_argument("--args", nargs=argparse.REMAINDER, default=[], metavar="ARG",
                   help="last: more arguments for the job's dynocc command, e.g. --args --resume --workers 2")
    p.set_defaults(func=cmd_submit)
    return p


# --------------------------------------------------------------------------- what is submitted


class Submission:
    """The entrypoint and runtime environment of one job, with the temp folder they point into."""

    def __init__(self, kind: str, entrypoint: str, runtime_env: dict, temp: Optional[tempfile.TemporaryDirectory]):
        self.kind = kind
        self.entrypoint = entrypoint
        self.runtime_env = runtime_env
        self._temp = temp

    def cleanup(self) -> None:
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None

    def __enter__(self) -> "Submission":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def validate_spec(path: str) -> str:
    """The spec's kind ('mine', 'mine-stereo', 'train') after validating it here; ConfigError if bad."""
    kind = spec_kind(path)
    if kind == "train":
        from .trainer.config import TrainConfig

        try:
            load_config(TrainConfig, path)
        except ConfigError as e:
            raise ConfigError(f"job spec {path}: {e}") from None
    else:
        spec = load_job_spec(path)
        local = [p for p in [*spec.inputs, spec.out or ""] if p and is_local(p.lstrip("@"))]
        if local:
            print(f"dynocc submit: note: {', '.join(local[:3])}{' ...' if len(local) > 3 else ''}: local paths "
                  f"are read and written on the cluster's nodes; use s3:// or gs:// URLs for a multi-node cluster",
                  file=sys.stderr)
    return kind


def entrypoint_for(kind: str, spec_arg: str, out: Optional[str] = None, extra: Optional[list[str]] = None) -> str:
    argv = ["dynocc", "train", "--config", spec_arg] if kind == "train" else ["dynocc", kind, "--job", spec_arg]
    if out:
        argv += ["--out", out]
    return shlex.join(argv + list(extra or []))


def check_entrypoint(entrypoint: str, build_parser: Callable[[], argparse.ArgumentParser]) -> None:
    """ConfigError if the local dynocc parser (``build_parser()``, the CLI's) refuses the job's command
    (it would fail on the cluster)."""
    import contextlib
    import io

    argv = shlex.split(entrypoint)[1:]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code not in (0, None):
            reason = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {e.code}"
            hint = " (give `dynocc submit ... --out URL`)" if "--out" in reason else ""
            raise ConfigError(f"the job's command would not run: `{entrypoint}`: {reason}{hint}") from None


def _package_dir(project: Path) -> Optional[dict]:
    """pyproject's package-dir if ``project`` is the dynocc project, else None."""
    pyproject = project / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        import tomllib
    except ImportError:  # Python 3.10
        text = pyproject.read_text()
        return dict(_DEFAULT_PACKAGE_DIR) if 'name = "dynocc"' in text else None
    data = tomllib.loads(pyproject.read_text())
    if data.get("project", {}).get("name") != "dynocc":
        return None
    mapping = data.get("tool", {}).get("setuptools", {}).get("package-dir") or {"dynocc": "dynocc"}
    return {k: v for k, v in mapping.items() if k == "dynocc" or k.startswith("dynocc.")}


def stage_package(project: Path, package_dir: dict, dest: Path) -> Path:
    """Assemble the project's packages as one importable ``dest/dynocc`` folder."""
    ignore = shutil.ignore_patterns(*_COPY_IGNORE)
    root = dest / "dynocc"
    for name in sorted(package_dir, key=lambda n: n.count(".")):
        target = root.joinpath(*name.split(".")[1:])
        shutil.copytree(project / package_dir[name], target, ignore=ignore, dirs_exist_ok=True)
    return root


def stage_project(project: Path, package_dir: dict, dest: Path) -> Path:
    """A copy of the project to upload as the working directory: everything but the development
    clutter, with the package source folders replaced by the assembled ``dynocc/`` package."""
    ignore = shutil.ignore_patterns(*_COPY_IGNORE)
    sources = {Path(folder).parts[0] for folder in package_dir.values()}
    dest.mkdir(parents=True)
    skip = set(ignore(str(project), [e.name for e in project.iterdir()]))
    for entry in project.iterdir():
        if entry.name in sources or entry.name in skip:
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, ignore=ignore)
        else:
            shutil.copy2(entry, dest / entry.name)
    stage_package(project, package_dir, dest)
    return dest


def _env_vars(env_args: list[str]) -> dict[str, str]:
    env = {name: os.environ[name] for name in ENV_PASSTHROUGH if os.environ.get(name)}
    for item in env_args:
        name, eq, value = item.partition("=")
        if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise ConfigError(f"--env {item!r}: expected NAME or NAME=VALUE")
        if eq:
            env[name] = value
        elif name in os.environ:
            env[name] = os.environ[name]
        else:
            raise ConfigError(f"--env {name}: not set in this shell (use --env {name}=VALUE)")
    return env


def build_submission(spec: str, build_parser: Callable[[], argparse.ArgumentParser], working_dir: Optional[str] = None,
                     env: Optional[list[str]] = None, pip: Optional[list[str]] = None, out: Optional[str] = None,
                     extra: Optional[list[str]] = None) -> Submission:
    """Validate ``spec`` and build the entrypoint and runtime environment (see the module doc); the
    entrypoint is checked with ``build_parser()`` (the CLI's parser, passed in so that this module does
    not import the CLI). Call :meth:`Submission.cleanup` once the job is submitted (the upload is done by then)."""
    kind = validate_spec(spec)
    runtime_env: dict[str, Any] = {}
    env_vars = _env_vars(env or [])
    if env_vars:
        runtime_env["env_vars"] = env_vars
    if pip:
        runtime_env["pip"] = list(pip)
    temp: Optional[tempfile.TemporaryDirectory] = None
    if working_dir is not None:
        wd = Path(working_dir).resolve()
        if not wd.is_dir():
            raise ConfigError(f"--working-dir {working_dir}: not a folder")
        if not is_local(spec):
            spec_arg = spec
        else:
            spec_path = Path(spec).resolve()
            if not spec_path.is_relative_to(wd):
                raise ConfigError(f"the spec {spec} is not inside --working-dir {working_dir}: the job could not "
                                  f"read it there; move it into {working_dir} or drop --working-dir")
            spec_arg = spec_path.relative_to(wd).as_posix()
        package_dir = _package_dir(wd)
        if package_dir:  # the dynocc project: ship its code as one complete package
            temp = tempfile.TemporaryDirectory(prefix="dynocc-submit-")
            runtime_env["working_dir"] = str(stage_project(wd, package_dir, Path(temp.name) / wd.name))
        else:
            runtime_env["working_dir"] = str(wd)
        runtime_env["excludes"] = list(UPLOAD_EXCLUDES)
    elif not is_local(spec):
        spec_arg = spec  # the cluster reads it from storage
    else:
        temp = tempfile.TemporaryDirectory(prefix="dynocc-submit-")
        folder = Path(temp.name) / "job"
        folder.mkdir()
        spec_arg = Path(spec).name
        shutil.copyfile(spec, folder / spec_arg)
        runtime_env["working_dir"] = str(folder)
    entrypoint = entrypoint_for(kind, spec_arg, out, extra)
    try:
        check_entrypoint(entrypoint, build_parser)
    except ConfigError:
        if temp is not None:
            temp.cleanup()
        raise
    return Submission(kind, entrypoint, runtime_env, temp)


# --------------------------------------------------------------------------- running it


def _address(args) -> str:
    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS")
    if not address:
        env = os.environ.get("RAY_ADDRESS", "")
        address = env if env.startswith(("http://", "https://")) else None
    if not address:
        raise ConfigError("no cluster: give --address http://HEAD:8265 (the Ray dashboard's address)")
    return address


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)


async def _tail(client, job_id: str, out, shown: list) -> None:
    async for lines in client.tail_job_logs(job_id):
        out.write(lines)
        out.flush()
        shown[0] += len(lines)


def _poll_logs(client, job_id: str, out, shown: int = 0, poll: float = 1.0) -> None:
    """Logs by polling (when the log stream is not available): print what is new until the end."""
    while True:
        status = _status(client, job_id)
        logs = client.get_job_logs(job_id)
        if len(logs) > shown:
            out.write(logs[shown:])
            out.flush()
            shown = len(logs)
        if status in _TERMINAL:
            return
        time.sleep(poll)


def _status(client, job_id: str) -> str:
    status = client.get_job_status(job_id)
    return str(getattr(status, "value", status))


def follow(client, job_id: str, out=None, settle_seconds: float = 30.0) -> tuple[str, str]:
    """Stream the job's logs to ``out`` until it ends; its final (status, message)."""
    out = out or sys.stdout
    shown = [0]  # characters already written
    try:
        asyncio.run(_tail(client, job_id, out, shown))
    except Exception as e:  # e.g. a proxy that does not pass websockets: poll instead
        print(f"dynocc submit: log stream unavailable ({type(e).__name__}: {e}); polling", file=sys.stderr)
        _poll_logs(client, job_id, out, shown[0])
    deadline = time.monotonic() + settle_seconds
    status = _status(client, job_id)
    while status not in _TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        status = _status(client, job_id)
    info = client.get_job_info(job_id)
    return status, (getattr(info, "message", None) or "")


def cmd_submit(args) -> int:
    address = _address(args)
    with build_submission(args.spec, args.build_parser, args.working_dir, args.env, args.pip, args.out, args.args) as sub:
        try:
            client = _client(address)
        except Exception as e:
            print(f"dynocc submit: cannot reach the Ray Jobs API at {address}: {type(e).__name__}: {e}",
                  file=sys.stderr)
            return 2
        extra = {}
        if args.entrypoint_num_cpus is not None:
            extra["entrypoint_num_cpus"] = args.entrypoint_num_cpus
        job_id = None
        for attempt in range(_SUBMIT_TRIES):
            try:
                job_id = client.submit_job(
                    entrypoint=sub.entrypoint, runtime_env=sub.runtime_env or None, submission_id=args.submission_id,
                    metadata={"dynocc_spec": os.path.basename(args.spec), "dynocc_command": sub.kind}, **extra)
                break
            except Exception as e:
                # A head that has just started answers "No available agent" until its node agent is up.
                if "No available agent" in str(e) and attempt + 1 < _SUBMIT_TRIES:
                    time.sleep(min(2.0 * (attempt + 1), 10.0))
                    continue
                print(f"dynocc submit: the cluster refused the job: {type(e).__name__}: {e}", file=sys.stderr)
                return 2
    print(f"dynocc submit: job {job_id} submitted to {address}: {sub.entrypoint}", file=sys.stderr, flush=True)
    if args.no_wait:
        print(job_id)
        print(f"dynocc submit: follow it with `ray job logs --follow --address {address} {job_id}`; "
              f"stop it with `ray job stop --address {address} {job_id}`", file=sys.stderr)
        return 0
    try:
        status, message = follow(client, job_id)
    except KeyboardInterrupt:
        print(f"\ndynocc submit: stopped following; job {job_id} keeps running "
              f"(`ray job stop --address {address} {job_id}` stops it)", file=sys.stderr)
        return 130
    if status == "SUCCEEDED":
        print(f"dynocc submit: job {job_id} SUCCEEDED", file=sys.stderr)
        return 0
    print(f"dynocc submit: job {job_id} {status}: {message.strip() or '(no message)'}", file=sys.stderr)
    return 1
