"""The layers are checked by the machine: `make lint` runs import-linter with the contract in
pyproject.toml, and an import that breaks a layer fails it. No module imports in a cycle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

import momentumbot

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(pkg_parent: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=pkg_parent, env={"PYTHONPATH": str(pkg_parent), "PATH": ""},
        capture_output=True, text=True,
    )  # fmt: skip


def _copy(tmp: Path) -> Path:
    shutil.copytree(
        Path(momentumbot.__file__).parent, tmp / "momentumbot",
        ignore=shutil.ignore_patterns("__pycache__"),
    )  # fmt: skip
    return tmp


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    res = _lint(_copy(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr


def test_an_import_that_breaks_a_layer_fails_the_lint(tmp_path: Path) -> None:
    pkg = _copy(tmp_path)
    errors = pkg / "momentumbot" / "engine" / "kernel" / "__init__.py"
    errors.write_text(errors.read_text() + "\nfrom momentumbot.app import trade  # noqa\n")
    res = _lint(pkg)
    assert res.returncode != 0
    assert (
        "BROKEN" in res.stdout
        and "momentumbot.engine.kernel -> momentumbot.app.trade" in res.stdout
    )


def test_no_import_cycle() -> None:
    g = grimp.build_graph("momentumbot", include_external_packages=False)
    cycles = []
    for m in sorted(g.modules):
        for dep in g.find_modules_directly_imported_by(m):
            if g.find_shortest_chain(importer=dep, imported=m) is not None:
                cycles.append((m, dep))
    assert cycles == []
