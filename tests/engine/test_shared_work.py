"""engine.shared_work: the worker thread's blocks shared with the minute loop's thread."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from momentumbot.engine.shared_work import SharedJob, WorkBoard


def test_every_block_runs_once_whoever_takes_it() -> None:
    seen: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def fn(lo: int, hi: int, tag: str) -> None:
        time.sleep(0.003)
        with lock:
            seen.append((lo, hi, threading.current_thread().name))

    job = SharedJob(fn, 103, ("x",), 4)
    helper = threading.Thread(target=job.help, name="helper")
    helper.start()
    job.run()
    helper.join()
    covered = sorted(i for lo, hi, _ in seen for i in range(lo, hi))
    assert covered == list(range(103))
    assert {name for _, _, name in seen} == {"helper", threading.current_thread().name}
    assert not job.unclaimed()


def test_a_failing_block_is_raised_by_the_posting_thread() -> None:
    def fn(lo: int, hi: int) -> None:
        if lo <= 7 < hi:
            raise ValueError("block with 7")

    job = SharedJob(fn, 20, (), 3)
    with pytest.raises(ValueError, match="block with 7"):
        job.run()


def test_an_empty_job_is_done_at_once() -> None:
    SharedJob(lambda lo, hi: None, 0, (), 5).run()


def test_the_waiting_thread_takes_part_then_returns_the_result() -> None:
    """The loop's thread, waiting for the next chunk, runs blocks of the job the worker
    posted and returns once the worker's whole task is done; idle is the time with nothing
    to take (the worker's 'reading' before it posts)."""
    board = WorkBoard()
    ran_by: dict[int, str] = {}
    lock = threading.Lock()

    def fn(lo: int, hi: int) -> None:
        time.sleep(0.002)
        with lock:
            for i in range(lo, hi):
                ran_by[i] = threading.current_thread().name

    def task() -> str:
        time.sleep(0.05)  # reading: nothing to share yet
        board.post(fn, 60, (), 2).run()
        return "chunk"

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker") as pool:
        future = pool.submit(task)
        idle, helping = board.help_until(future)
    assert future.result() == "chunk"
    assert sorted(ran_by) == list(range(60))
    mine = threading.current_thread().name
    assert mine in ran_by.values() and any(n.startswith("worker") for n in ran_by.values())
    assert idle >= 0.04 and helping > 0


def test_waiting_for_a_task_that_fails_returns_and_the_result_raises() -> None:
    board = WorkBoard()

    def task() -> None:
        raise OSError("disk gone")

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(task)
        board.help_until(future)
    with pytest.raises(OSError, match="disk gone"):
        future.result()


def test_an_interrupt_while_helping_gives_the_job_up_without_a_hang() -> None:
    """Ctrl-C reaches the main thread, which may be running a block of the worker's job: the
    job is given up (the worker's run() raises the interrupt instead of waiting forever for
    blocks nobody will run) and the helping thread raises it too."""
    started = threading.Event()

    def fn(lo: int, hi: int) -> None:
        if threading.current_thread().name == "helper":
            started.set()
            raise KeyboardInterrupt
        started.wait(1.0)
        time.sleep(0.002)

    job = SharedJob(fn, 400, (), 1)
    raised: list[BaseException] = []

    def helper() -> None:
        try:
            job.help()
        except BaseException as exc:
            raised.append(exc)

    t = threading.Thread(target=helper, name="helper")
    t.start()
    with pytest.raises(KeyboardInterrupt):
        job.run()
    t.join(5.0)
    assert not t.is_alive() and isinstance(raised[0], KeyboardInterrupt)
