"""What an operator can do to a running bot from outside (the dashboard's buttons): pause new
entries, resume, flatten and stop, re-arm after a halt. Each is journaled (meta and a note
input, so the journal says who changed what when) and takes effect at the next minute."""

from __future__ import annotations

import logging

from momentumbot.engine.kernel import C_HALTED
from momentumbot.engine.live import LiveEngine
from momentumbot.journal import journal as jr
from momentumbot.journal import replay as rp
from momentumbot.risk.kill_switch import KillSwitch
from momentumbot.trading.run import RunState
from momentumbot.trading.stepping import Stepper

log = logging.getLogger("momentumbot.trade")


class RunControls:
    def __init__(
        self,
        engine: LiveEngine,
        journal: jr.Journal,
        run: RunState,
        kill: KillSwitch,
        stepper: Stepper,
        *,
        who: str = "the dashboard",
    ) -> None:
        self.engine, self.journal, self.run, self.kill = engine, journal, run, kill
        self.stepper = stepper
        self.who = who

    def _note(self, control: str, meta: dict[str, str]) -> None:
        with self.journal.transaction():
            self.journal.set_many(meta)
            self.journal.add_input(rp.NOTE, None, None, {"control": control, "by": self.who})

    def pause(self) -> str:
        if self.run.stopping:
            return "the bot is stopping"
        if self.run.paused:
            return f"already paused ({self.run.paused})"
        why = f"paused from {self.who}"
        self.run.paused = why
        self._note("pause", {"paused": why})
        log.warning("PAUSED: no new entries from the next minute; exits and the flatten still go")
        return "paused: no new entries from the next minute; exits and the flatten still go"

    def resume(self) -> str:
        if not self.run.paused:
            return "not paused"
        self.run.paused = ""
        self._note("resume", {"paused": ""})
        log.warning("resumed: new entries allowed from the next minute")
        return "resumed: new entries allowed from the next minute"

    def stop(self) -> str:
        if self.run.stopping or self.kill.tripped:
            return f"already stopping ({self.kill.reason or self.run.stop_reason})"
        self._note("stop", {})
        self.kill.trip(f"stop from {self.who}")
        self.run.wake.set()
        return "stopping: every order cancelled, every position flattened, then the report"

    def rearm(self) -> str:
        run, e = self.run, self.engine
        if not (run.halted or run.buys_halted):
            return "not halted: nothing to re-arm"
        lifted = run.halted or run.buys_halted
        run.halted = run.buys_halted = ""
        meta = {"halted": "", "buys_halted": ""}
        if e.started and e.sessions:
            # the loss so far is accepted: the day's loss counts from here (as `trade --rearm`)
            meta["loss_reference"] = f"{e.sessions[-1].date()}|{e.equity()!r}"
            self.stepper.session_start_equity = e.equity()
        with self.journal.transaction():
            self.journal.set_many(meta)
            self.journal.add_input(rp.NOTE, None, None, {"rearm": True, "by": self.who})
        log.warning("re-armed from %s: the halt (%s) is lifted", self.who, lifted)
        # the minute step keeps a daily-loss halt for the rest of its session (as a backtest)
        later = " from the next session" if e.started and e.st.counters[C_HALTED] else ""
        return f"re-armed: the halt ({lifted}) is lifted; orders go out again{later}"
