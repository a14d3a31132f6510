"""The config reference (docs/config.md), generated from the schema so the two never drift."""

from __future__ import annotations

import json
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from momentumbot.config.schema import AppConfig

HEADER = """# Configuration reference

One TOML file holds every parameter; anything left out takes the default below.
`momentumbot config show` prints the effective config, `momentumbot config check FILE`
validates a file (unknown keys and bad values are refused with the file, the key and what
is allowed). This page is generated from the schema by `momentumbot config reference`;
a test fails if it falls out of step.

Parameter names are unique across sections, so sweeps and overrides can name them bare
(`step`, `buffer`, `rebalance_minutes`).
"""


def _default(field: Any) -> Any:
    if field.default_factory is not None:
        return field.default_factory()
    return field.default


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in get_args(annotation))
    if get_origin(annotation) is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    return str(getattr(annotation, "__name__", annotation))


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((f"{prefix}{name}", ann))
            continue
        default = json.dumps(_default(field))
        meaning = (field.description or "").replace("|", "\\|")
        rows.append((f"{prefix}{name}", _type_name(ann), f"`{default}`", meaning))
    for section, sub in nested:
        rows.extend(_rows(sub, f"{section}."))
    return rows


def config_reference_markdown() -> str:
    """Every key of the config: its TOML path, type, default and meaning."""
    lines = [HEADER, "| key | type | default | meaning |", "|---|---|---|---|"]
    for key, typ, default, meaning in _rows(AppConfig, ""):
        lines.append(f"| `{key}` | {typ} | {default} | {meaning} |")
    return "\n".join(lines) + "\n"
