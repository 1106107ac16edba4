"""Typed configuration: YAML files validated by pydantic models.

Every model derives from :class:`StrictModel`, so an unknown or misspelt key is an error, and
:func:`load_config` turns validation failures into one message that names the file and each key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be read or does not validate."""


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are rejected, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def _format_errors(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}'")
        elif e["type"] == "missing":
            lines.append(f"{source}: missing required key '{key}'")
        else:
            lines.append(f"{source}: key '{key}': {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def validate_config(data: Any, model: type[M], source: str = "<config>") -> M:
    """Validate an already-parsed mapping, naming ``source`` in every error."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(source, err)) from None


def load_config(path: str | Path, model: type[M], overrides: dict[str, Any] | None = None) -> M:
    """Read a YAML file into ``model``; ``overrides`` (dotted keys) win over the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    return validate_config(with_overrides(data or {}, overrides), model, str(path))


def with_overrides(data: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``data`` with each dotted key of ``overrides`` (``grpo.max_steps``) set, sections made
    where missing; the one place that reads dotted keys (CLI flags, ``--set``)."""
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for i, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                where = ".".join(parents[: i + 1])
                raise ConfigError(f"override {dotted!r}: {where!r} is not a section")
        node[leaf] = value
    return data


def parse_set_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` options as dotted overrides, each value read as YAML (``10``, ``true``,
    ``[1, 2]``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. grpo.max_steps=10")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {pair!r}: the value is not valid YAML ({err})") from None
    return out


def dump_config(cfg: BaseModel, path: str | Path) -> None:
    """Write a config back as YAML (run directories keep the resolved config they ran with)."""
    Path(path).write_text(
        yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
    )


def resolve_path(value: str | None, base: Path) -> str | None:
    """A path from a config file: relative to the working directory when it exists there, else to
    the file's directory ``base``; a hub name (no such path anywhere) is kept as written."""
    if value is None or Path(value).is_absolute() or Path(value).exists():
        return value
    candidate = base / value
    return str(candidate) if candidate.exists() else value
