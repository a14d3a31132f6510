"""requirements.lock (the pinned versions `make install` uses) is in step with pyproject.toml:
every dependency is pinned, at a version the pyproject's bounds allow."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    ]


def pinned() -> dict[str, list[tuple[Version, Marker | None]]]:
    """name -> [(version, marker)]: a universal lock may pin two versions for two Pythons."""
    out: dict[str, list[tuple[Version, Marker | None]]] = {}
    for n, raw in enumerate((ROOT / "requirements.lock").read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        spec, _, marker = line.partition(";")
        name, sep, version = spec.strip().partition("==")
        assert sep, f"requirements.lock line {n}: not pinned with == ({line!r})"
        entry = (Version(version.strip()), Marker(marker.strip()) if marker.strip() else None)
        out.setdefault(canonicalize_name(name), []).append(entry)
    return out


def test_every_dependency_is_pinned_within_its_bounds() -> None:
    pins = pinned()
    env = {"python_full_version": "3.11.7", "python_version": "3.11"}
    problems = []
    for req in declared():
        names = [req.name] + (["distributed"] if req.name == "dask" and req.extras else [])
        for name in names:
            versions = [
                v for v, m in pins.get(canonicalize_name(name), []) if m is None or m.evaluate(env)
            ]
            if not versions:
                problems.append(f"{name}: not in requirements.lock")
            elif name == req.name and not all(
                req.specifier.contains(v, prereleases=True) for v in versions
            ):
                problems.append(f"{req}: pinned {', '.join(map(str, versions))}")
    assert not problems, "run `make lock` after changing pyproject.toml:\n" + "\n".join(problems)


def test_the_lock_pins_exactly_one_version_per_python() -> None:
    for name, entries in pinned().items():
        for py in ("3.11", "3.12", "3.13"):
            env = {"python_full_version": f"{py}.0", "python_version": py}
            live = [v for v, m in entries if m is None or m.evaluate(env)]
            assert len(live) <= 1, f"{name}: {live} both apply on Python {py}"
