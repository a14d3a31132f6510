"""Reading, checking and writing the TOML config file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import ConfigError


def _describe(err: ErrorDetails, source: str) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
    if err["type"] == "extra_forbidden":
        parent = loc.rsplit(".", 1)[0] if "." in loc else ""
        allowed = _allowed_keys(parent)
        return f"{source}: unknown key '{loc}'; allowed here: {', '.join(allowed)}"
    msg = err["msg"]
    if err["type"] == "literal_error":
        msg = msg.replace("Input should be", "must be")
    if _is_secret(loc):
        return f"{source}: key '{loc}': {msg} (the value is a secret: not shown)"
    return f"{source}: key '{loc}': {msg} (got {err.get('input')!r})"


def _is_secret(dotted: str) -> bool:
    spec: Any = _secret_fields(AppConfig)
    for part in dotted.split("."):
        if spec is True:
            return True
        if not isinstance(spec, dict) or part not in spec:
            return False
        spec = spec[part]
    return spec is True


def _allowed_keys(dotted: str) -> list[str]:
    model: Any = AppConfig
    for part in [p for p in dotted.split(".") if p]:
        field = model.model_fields.get(part)
        if field is None or not hasattr(field.annotation, "model_fields"):
            return sorted(AppConfig.model_fields)
        model = field.annotation
    return sorted(model.model_fields)


def parse_config(data: dict[str, Any], source: str = "<config>") -> AppConfig:
    """Validate a parsed TOML document; errors name the source, the key and what is allowed."""
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e, source) for e in exc.errors()]
        raise ConfigError("; ".join(lines)) from None


def load_config(path: str | Path | None) -> AppConfig:
    """Load a config file, or the defaults when path is None."""
    if path is None:
        return AppConfig()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file") from None
    return parse_config(data, str(p))


def _secret_fields(model: type[BaseModel]) -> dict[str, Any]:
    """The pydantic `exclude` spec naming every SecretStr field, however deep."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        if ann is SecretStr or ann == list[SecretStr]:
            out[name] = True
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            sub = _secret_fields(ann)
            if sub:
                out[name] = sub
    return out


def config_to_toml(config: AppConfig) -> str:
    """The effective config as TOML that load_config accepts. Secrets are left out (they
    come from the environment); a masked value written back would read as the secret."""
    return tomli_w.dumps(config.model_dump(mode="json", exclude=_secret_fields(AppConfig)))


def with_overrides(config: AppConfig, **top: Any) -> AppConfig:
    """A copy with top-level keys replaced, validated again."""
    data = config.model_dump()  # python mode: secrets stay secrets, not masks
    data.update({k: v for k, v in top.items() if v is not None})
    return parse_config(data, "<command line>")
