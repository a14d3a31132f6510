"""A newcomer finds a behaviour's home from the folder names: every package says what it owns."""

from __future__ import annotations

import ast
from pathlib import Path

import momentumbot

PACKAGE = Path(momentumbot.__file__).parent


def test_every_package_docstring_says_what_it_owns() -> None:
    missing = []
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        if "Owns:" not in doc:
            missing.append(init.parent.name)
    assert missing == []
