"""A sweep from spec to outputs: check everything, load the bars once, run the parameter
sets that are not done yet on the chosen runner, record each as it finishes, then choose
the best, write best.toml, the walk-forward windows and the summary."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from momentumbot.app.backtest import write_results
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.store import BarStore
from momentumbot.domain.errors import ConfigError, DataError
from momentumbot.engine.backtest import resolve_sessions
from momentumbot.optimize.fast import SweepData, Window
from momentumbot.optimize.plan import SweepOutcome, SweepPlan, SweepSpec
from momentumbot.optimize.report import write_outputs
from momentumbot.optimize.results import ResultsStore
from momentumbot.optimize.runner import (
    DaskRunner,
    InlineRunner,
    LocalPool,
    Runner,
    SweepJob,
    Task,
    TaskResult,
)
from momentumbot.optimize.space import (
    RISK_LIMITS,
    ParamSet,
    apply_params,
    check_values,
    grid,
    params_key,
    random_sets,
)
from momentumbot.optimize.walkforward import (
    OBJECTIVES,
    WalkWindow,
    best_row,
    walk_windows,
)

log = logging.getLogger("momentumbot.optimize")

Progress = Callable[[int, int], None]


def _day(ts: pd.Timestamp) -> str:
    return f"{ts:%Y-%m-%d}"


def plan_sweep(spec: SweepSpec) -> SweepPlan:
    """Check the spec (names, ranges, values, data, windows) before any work starts."""
    if spec.objective not in OBJECTIVES:
        raise ConfigError(f"--objective {spec.objective}: must be one of {', '.join(OBJECTIVES)}")
    if spec.method not in ("grid", "random"):
        raise ConfigError(f"--method {spec.method}: must be grid or random")
    base = spec.base.model_dump()
    check_values(base, spec.specs)
    if spec.method == "grid":
        if spec.trials is not None:
            raise ConfigError("--trials is for --method random")
        sets = list(grid(spec.specs))
    else:
        if spec.trials is None:
            raise ConfigError("--method random needs --trials N")
        sets = random_sets(spec.specs, spec.trials, spec.seed)
    if spec.workers is not None and spec.workers < 1:
        raise ConfigError(f"--workers: need at least 1, got {spec.workers}")
    if not spec.symbols:
        raise ConfigError(
            "symbols: the symbol list is empty; set `symbols` in the config or pass --symbols"
        )
    if not spec.store.is_dir():
        raise DataError(
            f"{spec.store}: no bar store here; import bars with `momentumbot data import` "
            "or generate sample bars with `momentumbot data generate`"
        )
    store = BarStore(spec.store)
    missing = [s for s in spec.symbols if not store.has(s)]
    if missing:
        raise DataError(f"no bars in the store for {', '.join(missing)}")
    cal = TradingCalendar(spec.base.session.calendar)
    sessions = resolve_sessions(cal, store, spec.symbols, spec.start, spec.end)
    windows: list[WalkWindow] = []
    if spec.walk_forward is not None:
        windows = walk_windows(sessions, *spec.walk_forward)
    return SweepPlan(spec, sets, windows, Window(_day(sessions[0]), _day(sessions[-1])), sessions)


def fingerprint(spec: SweepSpec) -> dict[str, Any]:
    """What makes two sweeps' rows comparable: data, base config (swept keys left out),
    parameter names."""
    data = spec.base.model_dump(mode="json")
    for s in spec.specs:
        node = data
        for part in s.field.path[:-1]:
            node = node[part]
        node.pop(s.field.path[-1], None)
    data.pop("symbols", None)
    data.pop("data", None)
    data.pop("broker", None)
    # the risk limits change a backtest; the rest of [risk] (and a config without limits)
    # leaves the fingerprint as it was before the limits applied to backtests
    risk = data.pop("risk", {})
    limits = {k: risk[k] for k in RISK_LIMITS if risk.get(k)}
    if limits:
        data["risk"] = limits
    return {
        "store": str(spec.store.resolve()),
        "symbols": list(spec.symbols),
        "params": [s.name for s in spec.specs],
        "base_config": data,
    }


def _task_key(phase: str, window: Window, params: ParamSet) -> str:
    return f"{phase}|{window.start}|{window.end}|{params_key(params)}"


def _make_runner(spec: SweepSpec, n_tasks: int) -> Runner:
    """The runner, started: pool workers import and warm up while the bars load."""
    if spec.scheduler:
        return DaskRunner(spec.scheduler)
    import os

    workers = spec.workers or os.cpu_count() or 1
    workers = min(workers, max(n_tasks, 1))
    if workers <= 1:
        return InlineRunner()
    pool = LocalPool(workers)
    pool.start()
    return pool


def run_sweep(
    spec: SweepSpec,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    on_runner: Callable[[Runner], None] | None = None,
) -> SweepOutcome:
    """Run (or finish) the sweep into spec.out and write every output."""
    return _Sweep(spec, progress, on_runner).run()


class _Sweep:
    """One sweep's run: the tasks not done yet (training sets or the whole span, then each
    window's test of its best set), the runner started on first need, each result recorded
    as it finishes, the outputs at the end."""

    def __init__(
        self,
        spec: SweepSpec,
        progress: Callable[[int, int, str], None] | None,
        on_runner: Callable[[Runner], None] | None,
    ) -> None:
        self.t0 = time.perf_counter()
        self.spec, self.progress, self.on_runner = spec, progress, on_runner
        self.plan = plan_sweep(spec)
        self.store = ResultsStore(spec.out, [s.name for s in spec.specs])
        self.done = self.store.open(fingerprint(spec))
        self.base = spec.base.model_copy(update={"symbols": list(spec.symbols)})
        self.base_dump = self.base.model_dump()
        self.wf_dir = spec.out / "walk_forward"
        self.counts = {"ran": 0, "failed": 0}
        self.finished = self.total = 0
        self.runner: Runner | None = None
        self.timings: dict[str, float] = {"plan": time.perf_counter() - self.t0}

    def first_stage(self) -> list[Task]:
        """Every parameter set on each training window, or on the whole span."""
        plan = self.plan
        if plan.windows:
            return [
                Task(_task_key("train", w.train, p), "train", w.index, w.train, p)
                for w in plan.windows
                for p in plan.param_sets
            ]
        return [
            Task(_task_key("sweep", plan.span, p), "sweep", 0, plan.span, p)
            for p in plan.param_sets
        ]

    def test_stage(self) -> list[Task]:
        """Each window's test of the set that did best on its training, unless done."""
        results = self.store.read()
        results["params_key"] = results["key"].map(lambda k: k.split("|", 3)[3])
        tasks: list[Task] = []
        for w in self.plan.windows:
            if w.test is None:
                continue
            rows = results[(results["phase"] == "train") & (results["window"] == w.index)]
            rows = rows[rows["start"] == w.train.start]
            if rows.empty:
                continue
            chosen = _params_of(best_row(rows, self.spec.objective, self.plan.order), self.plan)
            task = Task(_task_key("test", w.test, chosen), "test", w.index, w.test, chosen, True)
            folder = self.wf_dir / f"window-{w.index:03d}"
            if task.key in self.done and (folder / "summary.json").is_file():
                self.total -= 1
                continue
            tasks.append(task)
        return tasks

    def record(self, result: TaskResult) -> None:
        if result.run is not None and result.error is None:
            cfg = apply_params(self.base_dump, self.spec.specs, result.task.params)
            folder = self.wf_dir / f"window-{result.task.window:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            write_results(cfg, result.run, folder, engine_seconds=result.seconds,
                          store_path=self.spec.store)  # fmt: skip
        self.store.append(result)
        self.counts["failed" if result.error else "ran"] += 1
        self.finished += 1
        if self.progress is not None:
            self.progress(self.finished, self.total, result.task.phase)

    def ensure_runner(self, n_tasks: int) -> Runner:
        if self.runner is None:
            t = time.perf_counter()
            self.runner = _make_runner(self.spec, n_tasks)
            self.timings["start_runner"] = time.perf_counter() - t
            t = time.perf_counter()
            job = _job(self.spec, self.plan, self.base_dump)
            self.timings["load_bars"] = time.perf_counter() - t
            t = time.perf_counter()
            self.runner.load(job)
            self.timings["ship_job"] = time.perf_counter() - t
            if self.on_runner is not None:
                self.on_runner(self.runner)
        return self.runner

    def run_tasks(self) -> int:
        """Run both stages; returns how many first-stage tasks were done already."""
        stage1 = self.first_stage()
        todo = [t for t in stage1 if t.key not in self.done]
        self.total = len(todo) + sum(1 for w in self.plan.windows if w.test is not None)
        try:
            if self.progress is not None:
                self.progress(0, self.total, "start")
            t_runs = time.perf_counter()
            if todo:
                self.ensure_runner(len(todo)).run(todo, self.record)
            stage2 = self.test_stage() if self.plan.windows else []
            if stage2:
                self.ensure_runner(len(stage2)).run(stage2, self.record)
            self.timings["runs"] = time.perf_counter() - t_runs
        except KeyboardInterrupt:
            if isinstance(self.runner, LocalPool):
                self.runner.abort()
                self.runner = None
            raise
        finally:
            t_stop = time.perf_counter()
            if self.runner is not None:
                self.runner.close()
            self.store.close()
        self.timings["stop_runner"] = time.perf_counter() - t_stop
        return len(stage1) - len(todo)

    def run(self) -> SweepOutcome:
        skipped = self.run_tasks()
        outcome = SweepOutcome(
            out=self.spec.out,
            results=self.store.read(),
            best=None,
            best_config=None,
            summary_html=None,
            ran=self.counts["ran"],
            skipped=skipped,
            failed=self.counts["failed"],
            seconds=time.perf_counter() - self.t0,
            runner=_describe(self.spec),
        )
        t = time.perf_counter()
        write_outputs(self.plan, outcome, self.base)
        self.timings["outputs"] = time.perf_counter() - t
        outcome.timings = self.timings
        outcome.seconds = time.perf_counter() - self.t0
        return outcome


def _describe(spec: SweepSpec) -> str:
    if spec.scheduler:
        return f"Dask at {spec.scheduler}"
    import os

    n = spec.workers or os.cpu_count() or 1
    return "1 process" if n <= 1 else f"local pool of {n} processes"


def _params_of(row: pd.Series, plan: SweepPlan) -> ParamSet:
    key = str(row["params_key"])
    for p in plan.param_sets:
        if params_key(p) == key:
            return p
    raise ValueError(f"parameter set {key} is not in this sweep")


def _job(spec: SweepSpec, plan: SweepPlan, base_dump: dict[str, Any]) -> SweepJob:
    spans = [plan.span] if not plan.windows else [
        w for ww in plan.windows for w in (ww.train, ww.test) if w is not None
    ]  # fmt: skip
    qws = {spec.base.allocation.quiet_window_minutes}
    for s in spec.specs:
        if s.field.path == ("allocation", "quiet_window_minutes"):
            qws = {int(v) for p in plan.param_sets for n, v in p if n == s.name}
    data = SweepData.load(
        BarStore(spec.store), spec.symbols, spans, sorted(qws), spec.base.session.calendar
    )
    return SweepJob(data, base_dump, list(spec.specs))
