"""The sweep's results table (results.csv), appended one finished run at a time.

Each row is one backtest: its key, phase and window, its span, the parameters, every
figure of summary.json, its run time and worker, and its daily returns (for the
overfitting statistics). A row is one unbuffered write, so an interrupted sweep leaves only
whole rows (a torn last line from a hard kill is cut off on the next open). A rerun reads
the keys already there and runs only the rest; spec.json refuses a rerun into the same
folder with a different base config, data or parameter names.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.domain.errors import ConfigError
from momentumbot.optimize.runner import TaskResult
from momentumbot.reporting.metrics import FIGURE_NAMES

RESULTS = "results.csv"
FAILURES = "failures.csv"
SPEC = "spec.json"
FIXED_COLUMNS = ("key", "phase", "window", "start", "end")
TAIL_COLUMNS = ("run_seconds", "worker", "daily_returns")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if np.isfinite(value) else ""
    return str(value)


class ResultsStore:
    """results.csv and failures.csv of one --out folder."""

    def __init__(self, out_dir: Path, param_names: Sequence[str]) -> None:
        self.out_dir = out_dir
        self.param_names = list(param_names)
        self.columns = [*FIXED_COLUMNS, *self.param_names, *FIGURE_NAMES, *TAIL_COLUMNS]
        self.path = out_dir / RESULTS
        self._fd: int | None = None
        self._done: set[str] = set()

    def open(self, fingerprint: Mapping[str, Any]) -> set[str]:
        """Check the folder belongs to this sweep (or is new), and return the keys done."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        spec_path = self.out_dir / SPEC
        wanted = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        if spec_path.is_file():
            have = json.loads(spec_path.read_text(encoding="utf-8"))
            if have != wanted:
                diff = sorted(k for k in set(have) | set(wanted) if have.get(k) != wanted.get(k))
                raise ConfigError(
                    f"{self.out_dir}: holds a sweep with a different {', '.join(diff)}; "
                    "rerun with the same config, data and parameter names, or choose another --out"
                )
        else:
            tmp = spec_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            tmp.replace(spec_path)
        header = (",".join(self.columns) + "\n").encode()
        if self.path.is_file():
            raw = self.path.read_bytes()
            if not raw.startswith(header):
                raise ConfigError(
                    f"{self.path}: columns differ from this sweep's; choose another --out"
                )
            if not raw.endswith(b"\n"):  # torn last row of a hard kill: drop it
                raw = raw[: raw.rfind(b"\n") + 1]
                self.path.write_bytes(raw)
            keys = pd.read_csv(io.BytesIO(raw), usecols=["key"], dtype=str)["key"]
            self._done = set(keys)
        else:
            self.path.write_bytes(header)
            self._done = set()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        return set(self._done)

    def append(self, result: TaskResult) -> None:
        """One finished run as one row (a failure goes to failures.csv instead)."""
        task = result.task
        if result.error is not None or result.figures is None:
            self._failure(result)
            return
        if task.key in self._done:  # a retried task that had finished after all
            return
        params = dict(task.params)
        row: list[str] = [task.key, task.phase, str(task.window), task.span.start, task.span.end]
        row += [_text(params.get(n)) for n in self.param_names]
        row += [_text(result.figures.get(n)) for n in FIGURE_NAMES]
        daily = result.daily if result.daily is not None else np.empty(0)
        row += [
            f"{result.seconds:.6f}",
            result.worker,
            ";".join(repr(float(x)) for x in daily),
        ]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(row)
        assert self._fd is not None
        os.write(self._fd, buf.getvalue().encode())
        self._done.add(task.key)

    def _failure(self, result: TaskResult) -> None:
        path = self.out_dir / FAILURES
        new = not path.is_file()
        with path.open("a", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            if new:
                w.writerow(["key", "phase", "window", "start", "end", "worker", "error"])
            t = result.task
            lines = (result.error or "").strip().splitlines()
            w.writerow([t.key, t.phase, t.window, t.span.start, t.span.end, result.worker,
                        lines[-1] if lines else ""])  # fmt: skip

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self) -> pd.DataFrame:
        return read_results(self.path)


def read_results(path: Path) -> pd.DataFrame:
    """results.csv as a frame (daily_returns left as text; see daily_matrix)."""
    return pd.read_csv(path, dtype={"key": str, "phase": str, "worker": str, "daily_returns": str},
                       keep_default_na=False, na_values=[""])  # fmt: skip


def daily_matrix(rows: pd.DataFrame) -> np.ndarray:
    """(sessions x runs) daily returns of the rows, in row order."""
    cols = [
        np.array([float(x) for x in str(text).split(";")])
        if isinstance(text, str) and text
        else np.empty(0)
        for text in rows["daily_returns"]
    ]
    if not cols:
        return np.empty((0, 0))
    length = min(len(c) for c in cols)
    return np.column_stack([c[:length] for c in cols])
