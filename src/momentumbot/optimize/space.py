"""The search space: `--param NAME=SPEC` parsed against the config schema, and the
parameter sets of a grid or random sweep, each turned into a validated AppConfig.

A SPEC is a range `LO:HI:STEP` (HI included when the steps land on it), a list `A,B,C`, a
single value, or, for `--method random` only, a continuous range `LO:HI`. Values are
decimal: `0.5:2.0:0.25` gives exactly 0.5, 0.75, ..., 2.0 (no float drift). Every value is
checked against the schema before any backtest runs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import product
from typing import Any

from pydantic import BaseModel

from momentumbot.config.loader import parse_config
from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import ConfigError

# Sections whose numbers change what a backtest does, and the [risk] limits (the minute step
# applies them in every mode). broker and the rest of risk apply to paper and live trading
# only and data to fetching, so sweeping them would run identical backtests.
BACKTEST_SECTIONS = ("portfolio", "strategy", "allocation", "execution", "session")
RISK_LIMITS = (
    "max_position_value",
    "max_gross_exposure",
    "max_orders_per_minute",
    "max_daily_loss",
)
MAX_GRID = 1_000_000

Value = int | float
ParamSet = tuple[tuple[str, Value], ...]


@dataclass(frozen=True)
class NumericField:
    """A numeric config key: its dotted path and whether it takes whole numbers."""

    path: tuple[str, ...]
    integer: bool

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def numeric_fields() -> list[NumericField]:
    """Every int or float key of the sections that affect a backtest, walking the schema."""
    out: list[NumericField] = []

    def walk(model: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, (*prefix, name))
            elif ann in (int, float):
                out.append(NumericField((*prefix, name), ann is int))

    for section in BACKTEST_SECTIONS:
        sub = AppConfig.model_fields[section].annotation
        assert isinstance(sub, type) and issubclass(sub, BaseModel)
        walk(sub, (section,))
    risk = AppConfig.model_fields["risk"].annotation
    assert isinstance(risk, type) and issubclass(risk, BaseModel)
    for name in RISK_LIMITS:
        out.append(NumericField(("risk", name), risk.model_fields[name].annotation is int))
    return out


def _all_keys() -> dict[str, str]:
    """Every dotted key of the config -> its section (to explain a refusal)."""
    keys: dict[str, str] = {}

    def walk(model: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, (*prefix, name))
            else:
                keys[".".join((*prefix, name))] = prefix[0] if prefix else ""

    walk(AppConfig, ())
    return keys


def resolve_name(name: str) -> tuple[str, NumericField]:
    """A bare or dotted parameter name -> (its display name, the field).

    Bare names work when unique (`step`, `rebalance_minutes`); the few that repeat
    (`minimum`, `maximum_fraction` of the two commission schedules) take their parent,
    e.g. `fixed.minimum`. The display name is the shortest unique suffix.
    """
    fields = numeric_fields()
    wanted = tuple(p for p in name.strip().split(".") if p)
    if not wanted:
        raise ConfigError(f"--param {name!r}: no parameter name before '='")
    hits = [f for f in fields if f.path[-len(wanted) :] == wanted]
    if len(hits) > 1:
        options = ", ".join(".".join(f.path[-2:]) for f in hits)
        raise ConfigError(f"--param {name}: more than one key has that name; say which: {options}")
    if not hits:
        keys = _all_keys()
        other = [k for k in keys if tuple(k.split("."))[-len(wanted) :] == wanted]
        if other:
            raise ConfigError(
                f"--param {name}: {other[0]} cannot be swept; only the numeric keys of "
                f"[{'], ['.join(BACKTEST_SECTIONS)}] and the [risk] limits change a backtest"
            )
        names = ", ".join(sorted(_display(f, fields) for f in fields))
        raise ConfigError(f"--param {name}: unknown parameter; sweepable ones: {names}")
    return _display(hits[0], fields), hits[0]


def _display(field: NumericField, fields: Sequence[NumericField]) -> str:
    for n in range(1, len(field.path) + 1):
        tail = field.path[-n:]
        if sum(1 for f in fields if f.path[-n:] == tail) == 1:
            return ".".join(tail)
    return field.dotted


@dataclass(frozen=True)
class ParamSpec:
    """One swept parameter: its values on a grid, or a continuous range (random only)."""

    name: str
    field: NumericField
    values: tuple[Value, ...]  # grid values (empty for a continuous range)
    low: Value | None = None  # continuous range bounds (random sampling)
    high: Value | None = None

    @property
    def continuous(self) -> bool:
        return not self.values


def _number(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ConfigError(f"{where}: {text.strip()!r} is not a number") from None
    if not value.is_finite():
        raise ConfigError(f"{where}: {text.strip()!r} is not a finite number")
    return value


def _typed(value: Decimal, field: NumericField, where: str) -> Value:
    if field.integer:
        if value != value.to_integral_value():
            raise ConfigError(f"{where}: {field.path[-1]} takes whole numbers, got {value}")
        return int(value)
    return float(value)


def parse_param(text: str) -> ParamSpec:
    """`NAME=SPEC` -> ParamSpec; one-line ConfigError when malformed."""
    where = f"--param {text}"
    if "=" not in text:
        raise ConfigError(f"{where}: expected NAME=SPEC, e.g. step=0.5:2.0:0.25 or buffer=0.1,0.2")
    name, spec = (part.strip() for part in text.split("=", 1))
    display, field = resolve_name(name)
    if not spec:
        raise ConfigError(f"{where}: empty range after '='")
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) == 2:
            lo, hi = (_number(p, where) for p in parts)
            if hi < lo:
                raise ConfigError(f"{where}: empty range, {hi} is below {lo}")
            return ParamSpec(display, field, (), _typed(lo, field, where), _typed(hi, field, where))
        if len(parts) != 3:
            raise ConfigError(f"{where}: a range is LO:HI:STEP (or LO:HI for --method random)")
        lo, hi, step = (_number(p, where) for p in parts)
        if step <= 0:
            raise ConfigError(f"{where}: the step of a range must be above 0, got {step}")
        if hi < lo:
            raise ConfigError(f"{where}: empty range, {hi} is below {lo}")
        count = int((hi - lo) / step) + 1
        if count > MAX_GRID:
            raise ConfigError(f"{where}: {count:,} values; at most {MAX_GRID:,}")
        values = [_typed(lo + i * step, field, where) for i in range(count)]
    else:
        items = [p for p in spec.split(",")]
        if any(not p.strip() for p in items):
            raise ConfigError(f"{where}: an empty value in the list")
        values = [_typed(_number(p, where), field, where) for p in items]
    unique = tuple(dict.fromkeys(values))
    if not unique:
        raise ConfigError(f"{where}: empty range")
    return ParamSpec(display, field, unique)


def parse_params(texts: Sequence[str]) -> list[ParamSpec]:
    """Every `--param`; at least one, each key at most once."""
    if not texts:
        raise ConfigError("give at least one --param NAME=SPEC, e.g. --param step=0.5:2.0:0.25")
    specs = [parse_param(t) for t in texts]
    seen: dict[tuple[str, ...], str] = {}
    for s in specs:
        if s.field.path in seen:
            raise ConfigError(f"--param {s.name}: given twice")
        seen[s.field.path] = s.name
    return specs


def _set(data: dict[str, Any], path: tuple[str, ...], value: Value) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def apply_params(
    base: Mapping[str, Any], specs: Sequence[ParamSpec], params: ParamSet
) -> AppConfig:
    """The base config (as `model_dump()` data) with the parameter set applied, validated."""
    data = _deep_copy(base)
    by_name = {s.name: s for s in specs}
    for name, value in params:
        _set(data, by_name[name].field.path, value)
    return parse_config(data, "<sweep>")


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out[key] = _deep_copy(value)
        elif isinstance(value, list):
            out[key] = list(value)
        else:
            out[key] = value
    return out


def check_values(base: Mapping[str, Any], specs: Sequence[ParamSpec]) -> None:
    """Every value (and each bound of a continuous range) passes the schema on its own, so
    a bad one is refused before any work starts."""
    for spec in specs:
        values = spec.values if not spec.continuous else (spec.low, spec.high)
        for value in values:
            assert value is not None
            try:
                apply_params(base, [spec], ((spec.name, value),))
            except ConfigError as exc:
                detail = str(exc).split(": ", 1)[-1]
                raise ConfigError(f"--param {spec.name}={value}: {detail}") from None


def grid_size(specs: Sequence[ParamSpec]) -> int:
    return math.prod(len(s.values) for s in specs)


def grid(specs: Sequence[ParamSpec]) -> Iterator[ParamSet]:
    """Every combination, the first parameter varying slowest."""
    if any(s.continuous for s in specs):
        names = ", ".join(s.name for s in specs if s.continuous)
        raise ConfigError(
            f"--param {names}: LO:HI without a step is for --method random; "
            "give LO:HI:STEP or a list for a grid"
        )
    if grid_size(specs) > MAX_GRID:
        raise ConfigError(f"the grid has {grid_size(specs):,} points; at most {MAX_GRID:,}")
    for combo in product(*(s.values for s in specs)):
        yield tuple((s.name, v) for s, v in zip(specs, combo, strict=True))


def random_sets(specs: Sequence[ParamSpec], trials: int, seed: int) -> list[ParamSet]:
    """`trials` distinct parameter sets drawn with a seeded generator: uniformly among the
    grid points when every parameter has a grid (all of them if there are fewer), and
    uniformly within LO:HI for continuous ranges (rounded to 6 decimals)."""
    if trials < 1:
        raise ConfigError(f"--trials: need at least 1, got {trials}")
    rng = random.Random(seed)
    if not any(s.continuous for s in specs):
        size = grid_size(specs)
        if size <= trials:
            return list(grid(specs))
        picks = sorted(rng.sample(range(size), trials))
        return [_grid_point(specs, i) for i in picks]
    out: dict[ParamSet, None] = {}
    attempts = 0
    while len(out) < trials and attempts < trials * 50:
        attempts += 1
        point: list[tuple[str, Value]] = []
        for s in specs:
            if s.values:
                point.append((s.name, rng.choice(s.values)))
            elif s.field.integer:
                assert isinstance(s.low, int) and isinstance(s.high, int)
                point.append((s.name, rng.randint(s.low, s.high)))
            else:
                assert s.low is not None and s.high is not None
                point.append((s.name, round(rng.uniform(float(s.low), float(s.high)), 6)))
        out[tuple(point)] = None
    return list(out)


def _grid_point(specs: Sequence[ParamSpec], index: int) -> ParamSet:
    values: list[Value] = []
    for s in reversed(specs):
        index, r = divmod(index, len(s.values))
        values.append(s.values[r])
    values.reverse()
    return tuple((s.name, v) for s, v in zip(specs, values, strict=True))


def params_key(params: ParamSet) -> str:
    """A stable text key of a parameter set (repr keeps floats exact)."""
    return ";".join(f"{n}={v!r}" for n, v in params)
