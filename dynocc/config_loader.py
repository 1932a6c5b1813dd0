"""The one place where YAML files and CLI flags become a typed config (:class:`MinerConfig`, :class:`StereoJobConfig`).

Precedence: defaults (the paper's values) < ``--config FILE.yaml`` < ``--set key.path=value`` <
dedicated flags (``--seed``, ``--flow-preset``, …). Errors name the bad key and say what is wrong.
"""

from __future__ import annotations

import copy
import typing
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


def deep_merge(base: dict, over: dict) -> dict:
    """``base`` with ``over`` laid on top, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    model: type[BaseModel],
    path: Optional[str] = None,
    assignments: Optional[list[str]] = None,
    overrides: Optional[dict[str, Any]] = None,
    base: Optional[dict] = None,
) -> BaseModel:
    """``model`` from defaults < ``base`` (e.g. a job spec's ``miner:`` tree) < YAML file < ``key=value``
    assignments < ``overrides`` (dotted keys, None = unset)."""
    tree: dict = deep_merge(copy.deepcopy(base or {}), read_yaml(path) if path else {})
    for text in assignments or []:
        _set_dotted(tree, *parse_assignment(text))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, dotted, value)
    try:
        return model.model_validate(tree)
    except ValidationError as e:
        raise ConfigError("bad configuration:\n" + format_validation_error(e)) from None


def _flag_type(annotation: Any) -> tuple[Any, Optional[tuple]]:
    """(argparse type, choices) of a field's annotation: Optional[X] -> X; Literal[...] -> its choices."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices
    return annotation, None


def add_model_flags(group, model: type[BaseModel], fields: Optional[list[str]] = None) -> None:
    """One ``--field-name`` flag per field of ``model`` (all by default): the type, choices and help
    come from the field (its description, and its default in the help). Every flag's own default is
    None (False for a switch), so that a flag the user gave can be told apart from one left unset;
    :func:`model_from_flags` then fills in the model's defaults."""
    for name in fields or list(model.model_fields):
        field = model.model_fields[name]
        flag = "--" + name.replace("_", "-")
        kind, choices = _flag_type(field.annotation)
        default = "" if field.default is None or field.default is False else f" (default: {field.default})"
        help_text = f"{field.description}{default}"
        if kind is bool:
            group.add_argument(flag, dest=name, action="store_true", help=help_text)
        else:
            group.add_argument(flag, dest=name, type=kind, choices=choices, default=None, help=help_text)


def model_from_flags(model: type[BaseModel], args: Any) -> BaseModel:
    """``model`` from the parsed flags of :func:`add_model_flags` (unset ones take the model's
    defaults); ConfigError naming the flag for a bad value."""
    given = {name: getattr(args, name) for name in model.model_fields
             if getattr(args, name, None) is not None}
    try:
        return model.model_validate(given)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            lines.append(f"--{name.replace('_', '-')} {given.get(name)!r}: {err['msg']}")
        raise ConfigError("; ".join(lines)) from None


def field_at(model: type[BaseModel], dotted: str):
    """The pydantic field at a dotted path of nested models (e.g. ``flow.dis_preset`` of MinerConfig)."""
    current: Any = model
    field = None
    for part in dotted.split("."):
        field = current.model_fields[part]
        inner = field.annotation
        args = [a for a in typing.get_args(inner) if a is not type(None)]
        if typing.get_origin(inner) is typing.Union and len(args) == 1:
            inner = args[0]
        current = inner
    return field


def add_setting_flags(group, model: type[BaseModel], flags: dict[str, str]) -> None:
    """Dedicated flags for settings of ``model``: ``{"--flow-preset": "flow.dis_preset", ...}``. Type,
    choices and help come from the field at each dotted key (its description and default); every
    flag's default is None (unset: the config file, ``--set`` or the model's default decides).
    :func:`setting_overrides` reads them back as ``load_config`` overrides."""
    for flag, dotted in flags.items():
        field = field_at(model, dotted)
        kind, choices = _flag_type(field.annotation)
        default = "" if field.default is None else f" (default: {field.default})"
        help_text = f"{field.description}{default}; sets {dotted}"
        dest = flag.lstrip("-").replace("-", "_")
        if kind is bool:
            group.add_argument(flag, dest=dest, action="store_true", default=None, help=help_text)
        else:
            group.add_argument(flag, dest=dest, type=kind, choices=choices, default=None, help=help_text)


def setting_overrides(args: Any, flags: dict[str, str]) -> dict[str, Any]:
    """``{dotted key: value}`` of the flags of :func:`add_setting_flags` (None where not given)."""
    return {dotted: getattr(args, flag.lstrip("-").replace("-", "_"), None) for flag, dotted in flags.items()}
