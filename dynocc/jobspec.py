"""Job specs: a mining job written down as YAML (``jobs/mine_*.yaml``), run with ``dynocc mine --job``.

A job spec holds what a ``dynocc mine`` / ``dynocc mine-stereo`` command line holds: the inputs,
the output, the engine settings, the storage options and the miner's settings (under ``miner:``,
the keys of :class:`~dynocc.factory.config.MinerConfig` or
:class:`~dynocc.factory.config.StereoJobConfig`)::

    command: mine                 # or mine-stereo
    inputs: [s3://bucket/youtube-vos/train/JPEGImages/]
    out: s3://bucket/mined/youtube-vos
    engine: ray                   # ray | local
    actors: 8
    cpus_per_actor: 3
    gpus_per_actor: 0.5
    max_retries: 2
    miner:
      flow: {backend: raft-small, weights: s3://bucket/models/raft-small.pth}

The spec's values are defaults: flags given on the command line override them (positional inputs
replace the spec's inputs; ``--config FILE.yaml`` is laid over ``miner:``; ``--set`` and the
dedicated flags come last, as without a spec). Unknown keys and bad values are
:class:`~dynocc.config_loader.ConfigError` s that name the key (``dynocc`` prints them and exits
with code 2, nothing runs).

Paths in a spec are read as on the command line: relative to the current directory.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo

from .config_loader import ConfigError, format_validation_error, load_config, read_yaml
from .factory.config import RAY_ONLY_SETTINGS, EngineConfig

__all__ = ["JobSpec", "load_job_spec", "read_spec_file", "spec_kind", "apply_job_spec", "miner_model",
           "ENGINE_DEFAULTS"]

# The engine settings a spec may set, with their defaults: EngineConfig's (the one definition). In a
# spec and on the command line an unset setting is None, so that a given one can be told apart.
SPEC_ENGINE_SETTINGS = [k for k in EngineConfig.model_fields if k != "ray_logs"]
ENGINE_DEFAULTS = {k: EngineConfig.model_fields[k].default for k in SPEC_ENGINE_SETTINGS}


class _JobSpecBase(BaseModel):
    """The keys of a spec that are not engine settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Literal["mine", "mine-stereo"] = Field(
        description="which command runs the spec: 'mine' (DynOcc, videos) or 'mine-stereo' (ReDWeb, stereo photos)")
    inputs: list[str] = Field(
        default_factory=list,
        description="inputs as on the command line: files, folders, YouTube-VOS roots, URLs, globs, @lists")
    out: Optional[str] = Field(None, min_length=1, description="output folder or fsspec URL")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options for inputs and out")
    miner: dict[str, Any] = Field(
        default_factory=dict, description="miner settings: the keys of MinerConfig (mine) or StereoJobConfig "
                                          "(mine-stereo), as in a --config file")

# JobSpec = the keys above + EngineConfig's fields, each optional (None: not set in the spec).
_ENGINE_KEYS = {name: (Optional[EngineConfig.model_fields[name].annotation],
                       FieldInfo.merge_field_infos(EngineConfig.model_fields[name], default=None))
                for name in SPEC_ENGINE_SETTINGS}


class JobSpec(create_model("_JobSpecFields", __base__=_JobSpecBase, **_ENGINE_KEYS)):
    """One mining job: everything ``dynocc mine`` / ``dynocc mine-stereo`` takes, as YAML keys: the
    inputs, ``out``, ``storage_options``, ``miner`` and the engine settings of
    :class:`~dynocc.factory.config.EngineConfig` (unset ones take its defaults)."""

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_input(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("inputs")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        for i, entry in enumerate(value):
            if not entry.strip():
                raise ValueError(f"inputs[{i}] is empty")
        return value

    @model_validator(mode="after")
    def _ray_only_with_ray(self) -> "JobSpec":
        if self.engine == "local":
            given = [k for k in RAY_ONLY_SETTINGS if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} only apply to engine 'ray' (this spec says engine: local)")
        return self


def miner_model(command: str) -> type[BaseModel]:
    from .factory.config import MinerConfig, StereoJobConfig

    return StereoJobConfig if command == "mine-stereo" else MinerConfig


def read_spec_file(path: str) -> dict:
    """The YAML mapping of a spec (a local path or an fsspec URL); ConfigError if unreadable."""
    try:
        return read_yaml(path)
    except ConfigError as e:
        raise ConfigError(str(e).replace("config file", "job spec", 1)) from None


def _prefixed(e: ConfigError, prefix: str) -> str:
    """load_config's ``"  key: problem"`` lines with the section prefixed to each key."""
    lines = [line for line in str(e).splitlines() if line.startswith("  ")]
    if not lines:
        return f"  {prefix.rstrip('.')}: {e}"
    return "\n".join(f"  {prefix}{line[2:]}" for line in lines)


def load_job_spec(path: str) -> JobSpec:
    """Read and validate a job spec, its ``miner:`` section included; ConfigError names the bad key."""
    tree = read_spec_file(path)
    problems = []
    spec = None
    try:
        spec = JobSpec.model_validate(tree)
    except ValidationError as e:
        problems.append(format_validation_error(e))
    miner, command = tree.get("miner"), tree.get("command")
    if isinstance(miner, dict) and command in ("mine", "mine-stereo"):  # all problems at once
        try:
            load_config(miner_model(command), base=miner)
        except ConfigError as e:
            problems.append(_prefixed(e, "miner."))
    if problems:
        raise ConfigError(f"job spec {path}: bad settings:\n" + "\n".join(problems))
    return spec


def spec_kind(path: str) -> str:
    """'mine', 'mine-stereo' or 'train': what a spec file is for (its ``command:`` key; a spec
    without one whose keys are those of the trainer's config is a training spec)."""
    tree = read_spec_file(path)
    if "command" in tree:
        command = tree["command"]
        if command not in ("mine", "mine-stereo"):
            raise ConfigError(f"job spec {path}: command: must be 'mine' or 'mine-stereo', got {command!r}")
        return command
    train_keys = {"model", "data", "loss", "optim", "scale", "run"}
    try:
        from .trainer.config import TrainConfig

        train_keys = set(TrainConfig.model_fields)
    except ImportError:  # pragma: no cover - the trainer ships with the package
        pass
    if tree and set(tree) <= train_keys:
        return "train"
    raise ConfigError(f"job spec {path}: cannot tell what it is for: a mining spec has a 'command:' key "
                      f"(mine or mine-stereo); a training spec has only the keys {sorted(train_keys)}")


def apply_job_spec(args) -> Optional[JobSpec]:
    """Fill the parsed ``dynocc mine`` / ``mine-stereo`` arguments from ``args.job`` (if given):
    the spec's values where no flag was given, then EngineConfig's defaults (the Ray-only settings
    stay None when unset: :func:`~dynocc.config_loader.model_from_flags` fills them), and check that
    inputs and ``--out`` came from somewhere. Raises ConfigError."""
    command = args.command
    spec = load_job_spec(args.job) if getattr(args, "job", None) else None
    if spec is not None and spec.command != command:
        raise ConfigError(f"job spec {args.job} is for `dynocc {spec.command}` (command: {spec.command}), "
                          f"not `dynocc {command}`; run `dynocc {spec.command} --job {args.job}`")
    if spec is not None:
        if not args.inputs:
            args.inputs = list(spec.inputs)
        if args.out is None:
            args.out = spec.out
        if args.engine is None:
            args.engine = spec.engine
        if (args.engine or ENGINE_DEFAULTS["engine"]) == "ray":  # a spec's Ray settings are dropped under --engine local
            for key in RAY_ONLY_SETTINGS:
                if getattr(args, key) is None:
                    setattr(args, key, getattr(spec, key))
        for key in SPEC_ENGINE_SETTINGS:  # the other engine settings: flags win over the spec
            if key not in RAY_ONLY_SETTINGS and key not in ("engine", "retry_failed", "dry_run") \
                    and getattr(args, key, None) is None:
                setattr(args, key, getattr(spec, key))
        args.retry_failed = bool(args.retry_failed or spec.retry_failed)
        args.dry_run = bool(getattr(args, "dry_run", False) or spec.dry_run)
        if args.storage_options is None and spec.storage_options:
            args.storage_options = dict(spec.storage_options)
        # miner settings: spec < --config file < --set < flags (load_config lays them in that order)
        args.miner_tree = dict(spec.miner)
    for key in SPEC_ENGINE_SETTINGS:  # the Ray-only ones stay None: given or not is what --engine local checks
        if key not in RAY_ONLY_SETTINGS and getattr(args, key, None) is None:
            setattr(args, key, ENGINE_DEFAULTS[key])
    where = f" (job spec {args.job} has none)" if spec is not None else ""
    if not args.inputs:
        raise ConfigError(f"no inputs: give INPUT arguments or a --job spec with inputs{where}")
    if not args.out:
        raise ConfigError(f"no output: give --out or a --job spec with out{where}")
    return spec
