"""A stale compiled kernel can never run: the cache is keyed by the source of every compiled
module, so editing a helper in another file recompiles the functions that inline it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import momentumbot
from momentumbot.compiled import COMPILED_MODULES, PACKAGE, source_key

SCRIPT = """
from momentumbot.compiled import CACHE_DIR
from momentumbot.config.schema import ExecutionConfig
from momentumbot.execution.costs import cost_params
from momentumbot.execution.matching import match_in_bar

p = cost_params(ExecutionConfig())
qty, price, *_ = match_in_bar(1, 100, 0, 100.0, 1e6, False, 10**12, 0.0, 0.0, 0.0, 0.0, p)
print(repr(price), CACHE_DIR)
"""


def test_every_compiled_module_is_in_the_key() -> None:
    users = {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if re.search(
            r"^from momentumbot\.compiled import .*\bjit\b", p.read_text(encoding="utf-8"), re.M
        )
    }
    # the domain modules and the kernel's tables and state they import: compiled code reads
    # their constants at compile time
    constants = {
        m.replace(".", "/") + ".py"
        for u in users
        for m in re.findall(
            r"^from momentumbot\.(domain\.\w+|engine\.kernel\.(?:tables|state)) import",
            (PACKAGE / u).read_text(),
            re.M,
        )
    }
    assert users | (constants - {"domain/errors.py"}) == set(COMPILED_MODULES)
    assert not [
        p
        for p in PACKAGE.rglob("*.py")
        if re.search(r"^from numba import .*njit", p.read_text(), re.M)
    ], "compile with momentumbot.compiled.jit, not numba.njit"


def test_editing_a_helper_in_another_module_recompiles_its_callers(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    shutil.copytree(
        Path(momentumbot.__file__).parent, pkg / "momentumbot",
        ignore=shutil.ignore_patterns("__pycache__"),
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(pkg), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)

    def price() -> tuple[float, str]:
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True,
            text=True, check=True,
        ).stdout.split()  # fmt: skip
        return float(out[0]), out[1]

    def cached() -> dict[str, int]:
        return {f.name: f.stat().st_mtime_ns for f in Path(dir_before).iterdir()}

    before, dir_before = price()
    assert str(tmp_path / "cache") in dir_before
    files = cached()
    assert files, "compiled code was cached"
    again, dir_again = price()  # from the cache: same key, nothing compiled or written again
    assert (again, dir_again) == (before, dir_before)
    assert cached() == files, "the second run loaded the cache instead of recompiling"

    costs = pkg / "momentumbot" / "execution" / "costs.py"
    text = costs.read_text()
    edited = text.replace(
        "return open_price + side * slippage_per_share(open_price, p)",
        "return open_price + side * slippage_per_share(open_price, p) + 1.0",
    )
    assert edited != text
    costs.write_text(edited)
    assert source_key(pkg / "momentumbot") != source_key(PACKAGE)
    after, dir_after = price()
    assert dir_after != dir_before
    assert after == before + 1.0, "match_in_bar (matching.py) runs the edited fill_price (costs.py)"
