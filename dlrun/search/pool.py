"""Local worker processes for a sweep: a small pool that outlives a dead worker and dies with its driver.

`concurrent.futures.ProcessPoolExecutor` breaks every future when one worker dies. Here each worker
is a long-lived spawned process (TensorFlow does not survive a fork) that takes one point at a time
over its own pipe, so the driver knows which point a dead worker held: that point alone fails
(`--resume` retries it), a new worker takes the dead one's place, and the other points go on.

A worker dies with its driver, even when the driver is killed with -9: on Linux the kernel kills
it (prctl PR_SET_PDEATHSIG), and everywhere a watchdog thread notices that its parent is gone.
Workers leave the terminal's process group, so Ctrl-C reaches only the driver, which stops each busy
worker with exactly one SIGINT (as it does when the driver alone gets SIGINT or SIGTERM).
The kernel's signal is tied to the thread that started the worker: start workers from a thread
that outlives them (the sweep runs them from the main thread).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from dlrun.search.executors import Task, TaskQueue, Tasks, Work, cores, died, on_interrupt, run_point, size_threads

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_SECONDS = 0.5
STOP_SECONDS = 60.0
"""How long stopped runs may take to save what they did (model, summary, plots) before their worker is killed."""


class LocalExecutor:
    """Run points in N worker processes on this machine, each with its share of the cores."""

    def __init__(self, jobs: int, work: Work = run_point):
        self.jobs = jobs
        self.threads = max(1, cores() // jobs)
        self.work = work

    def run(self, tasks: Tasks, on_start: Callable[[int], None]) -> Iterator[dict[str, Any]]:
        """Yield each point's result as it finishes (a dead worker's point as failed, with `retry`).

        `tasks` is a list, or a function asked for the next task whenever a worker is free (see `TaskQueue`).
        On KeyboardInterrupt, nothing else starts: the runs in progress stop and keep their epochs,
        their results are yielded, then the interrupt is raised again.
        """
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        queue = TaskQueue(tasks)
        workers: list[_Worker] = []
        retired: list[_Worker] = []

        def staff() -> None:
            """Give every idle worker a point, hire replacements for dead ones, let go of the rest."""
            for worker in [w for w in workers if w.task is None]:
                if (task := queue.peek()) is not None:
                    if not worker.give(task):
                        continue  # it died since its last result: the point stays queued for its replacement
                    queue.pop()
                else:
                    worker.retire()
                    workers.remove(worker)
                    retired.append(worker)
            while len(workers) < self.jobs and (task := queue.pop()) is not None:
                workers.append(_Worker(context, self.threads, task, self.work))

        try:
            staff()
            try:
                while workers:
                    yield from _results(workers, on_start)
                    staff()
            except KeyboardInterrupt:
                queue.close()
                for worker in workers:
                    worker.interrupt()  # it may have come to the driver alone (kill -INT, a scheduler)
                while workers:
                    yield from _results(workers, on_start)
                    staff()
                raise
        finally:
            _stop(workers + retired)


def _results(workers: list[_Worker], on_start: Callable[[int], None]) -> Iterator[dict[str, Any]]:
    """Wait for news from the busy workers; yield the results that came, and a failure per dead worker's point.

    A worker left holding no point is removed from `workers` if it died, kept (idle) otherwise.
    """
    from multiprocessing.connection import wait

    wait([w.conn for w in workers] + [w.process.sentinel for w in workers], timeout=1.0)
    for worker in list(workers):
        dead = worker.process.exitcode is not None  # before reading: what it sent before dying is read below
        for kind, payload in worker.messages():
            if kind == "started":
                on_start(payload)
            elif kind == "result":
                worker.task = None
                yield payload
        if dead:
            workers.remove(worker)
            worker.close()
            if worker.task is not None:
                index, worker.task = worker.task[0], None
                yield died(index, worker.how_it_died())


def _stop(workers: list[_Worker]) -> None:
    """End every worker: idle ones at once, busy ones (the sweep stopped early) once they saved their run."""
    for worker in workers:
        worker.retire()
        if worker.task is not None:
            worker.interrupt()
    deadline = time.monotonic() + STOP_SECONDS
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.exitcode is None:
            worker.process.kill()
            worker.process.join()
        worker.close()


class _Worker:
    """The driver's side of one worker process: its pipe, and the point it holds."""

    def __init__(self, context, threads: int, task: Task, work: Work = run_point):
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=worker_main, args=(child, os.getpid(), threads, work), name="dlrun-sweep-worker", daemon=True
        )
        self.process.start()
        child.close()
        self.task: Task | None = task  # held even if sending fails: a worker that dies at once fails it
        self.give(task)

    def give(self, task: Task) -> bool:
        """Send the worker a point; False if it is gone (it died since it last reported)."""
        try:
            self.conn.send(task)
        except OSError:
            return False
        self.task = task
        return True

    def retire(self) -> None:
        """Tell the worker to exit once it is done with its point."""
        try:
            self.conn.send(None)
        except OSError:
            pass  # it is gone already

    def interrupt(self) -> None:
        """Stop the point in progress as Ctrl-C would (the worker stops once, however many it gets)."""
        if self.task is not None and self.process.exitcode is None:
            try:
                os.kill(self.process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def messages(self) -> list[tuple[str, Any]]:
        received = []
        try:
            while self.conn.poll():
                received.append(self.conn.recv())
        except (EOFError, OSError):
            pass  # the worker died; the caller sees it from its exit code
        return received

    def how_it_died(self) -> str:
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name}" + (", as an out-of-memory kill does" if -code == signal.SIGKILL else "")
        return f"it exited with code {code}"

    def close(self) -> None:
        self.conn.close()


# --- inside a worker process ------------------------------------------------------------------


def worker_main(conn, parent: int, threads: int, work: Work = run_point) -> None:
    """Train the points the driver sends over `conn` with `work`, one at a time, until it sends None or is gone."""
    die_with(parent)
    if hasattr(os, "setpgrp"):
        # Out of the terminal's process group: a Ctrl-C reaches the driver alone, which passes one on to
        # each busy worker. Two copies (the terminal's and the driver's) would read as "stop at once".
        os.setpgrp()
    signal.signal(signal.SIGINT, on_interrupt)
    try:
        size_threads(threads)  # import TensorFlow now, while the driver starts the other workers
    except Exception:
        pass  # run_point sizes them again, and reports why it cannot
    try:
        while (task := conn.recv()) is not None:
            conn.send(("started", task[0]))
            conn.send(("result", work(*task, threads)))
    except (EOFError, OSError):
        pass  # the driver is gone (and this process with it, see die_with)


def die_with(parent: int) -> None:
    """Make this process die when `parent` does, even by kill -9: no orphan goes on training."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still notices
    if os.getppid() != parent:
        os._exit(1)  # the driver died before the kernel was told to kill this process with it
    threading.Thread(target=_watch, args=(parent,), name="dlrun-parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)
