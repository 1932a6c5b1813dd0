"""The one place where YAML files and CLI flags become a typed config (:class:`MinerConfig`, :class:`StereoJobConfig`).

Precedence: defaults (the paper's values) < ``--config FILE.yaml`` < ``--set key.path=value`` <
dedicated flags (``--seed``, ``--flow-preset``, …). Errors name the bad key and say what is wrong.
"""

from __future__ import annotations

from typing import Any, Optional

import yaml
from pydantic import BaseModel, ValidationError



class ConfigError(ValueError):
    """A user's configuration mistake; the CLI prints it without a traceback (exit code 2)."""


def json_object(text: str) -> dict:
    """An argparse type: a JSON object given on the command line (e.g. ``--storage-options``)."""
    import argparse
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {dotted!r}: {k!r} is not a section")
        node = nxt
    node[keys[-1]] = value


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key.path=value`` with the value read as YAML (so 0.3, true, null, [1, 2] work)."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: cannot read value {raw!r}: {e}") from None
    return key.strip(), value


def read_yaml(path: str) -> dict:
    import fsspec

    try:
        with fsspec.open(path, "r") as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(data).__name__}")
    return data


def format_validation_error(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        got = f" (got {err['input']!r})" if err["type"] != "extra_forbidden" and "input" in err else ""
        lines.append(f"  {where}: {msg}{got}")
    return "\n".join(lines)


def load_config(
    model: type[BaseModel],
    path: Optional[str] = None,
    assignments: Optional[list[str]] = None,
    overrides: Optional[dict[str, Any]] = None,
) -> BaseModel:
    """``model`` from defaults < YAML file < ``key=value`` assignments < ``overrides`` (dotted keys, None = unset)."""
    tree: dict = read_yaml(path) if path else {}
    for text in assignments or []:
        _set_dotted(tree, *parse_assignment(text))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, dotted, value)
    try:
        return model.model_validate(tree)
    except ValidationError as e:
        raise ConfigError("bad configuration:\n" + format_validation_error(e)) from None
