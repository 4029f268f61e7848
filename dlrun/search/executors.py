"""Where a sweep's runs execute: local worker processes, or Ray tasks. Each trains one point.

A point is a spec file plus its overrides; a worker loads, trains, and returns a plain dict, so
failures (a bad override, a NaN loss) come back as results instead of stopping the sweep.
Nothing here imports TensorFlow at module level: the driver never needs it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any

RAY_MISSING = 'the Ray executor needs Ray, which is not installed: pip install "dlrun[ray]" (or --executor local)'


class ExecutorKind(str, Enum):
    """Where a sweep's runs train."""

    local = "local"
    """Worker processes on this machine."""
    ray = "ray"
    """Ray tasks, on a local Ray instance or a cluster (`--address`)."""


_events = None  # the queue a local worker reports "started" on (set by its initializer)
_stop = None  # set by the driver on Ctrl-C: points already queued to a worker must not start
_training = False  # a Ctrl-C only interrupts a worker while it trains (see _on_sigint)
_threads_set = False


def cores() -> int:
    """Count the CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def size_threads(threads: int) -> None:
    """Size TensorFlow's thread pools before its runtime starts, so N parallel runs don't fight."""
    global _threads_set
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if _threads_set:
        return
    from dlrun.backend import import_keras

    import_keras()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # the runtime already started in this process (a reused Ray worker): keep its pools
    _threads_set = True


def run_point(
    index: int, spec_path: str, overrides: list[str], out: str, tracking: dict | None, threads: int
) -> dict[str, Any]:
    """Train one point of a sweep into `out` and say how it went; log it to MLflow as `tracking` says, if given.

    Returns:
        {"index", "status" (completed / early-stopped / nan / interrupted / failed), "run_dir" (or
        None when training never started), "error" (a message, or None)}.
    """
    global _training
    result: dict[str, Any] = {"index": index, "status": "failed", "run_dir": None, "error": None}
    if _stop is not None and _stop.is_set():
        return result | {"status": "interrupted", "error": "not started: the sweep was interrupted"}
    if _events is not None:
        _events.put(("start", index))
    _training = True
    try:
        size_threads(threads)
        from dlrun.errors import DlrunError, TrainingError
        from dlrun.spec.loader import load_spec
        from dlrun.training.fit import train

        try:
            spec = load_spec(spec_path, overrides)
            outcome = train(spec, Path(out), overrides, quiet=True, tracking=_tracking(tracking))
            result.update(status=outcome.summary["status"], run_dir=str(outcome.run_dir))
        except TrainingError as exc:
            result.update(status=exc.status, error=str(exc))
        except DlrunError as exc:
            result.update(error=str(exc))
        except KeyboardInterrupt:
            result.update(status="interrupted", error="interrupted")
        except Exception as exc:  # a bug or a Keras error must not take the whole sweep down
            result.update(error=f"{type(exc).__name__}: {exc}")
    finally:
        _training = False
        _clear_session()
    return result


def _tracking(data: dict | None):
    """Rebuild the point's MLflow settings the sweep sent (None: not tracked)."""
    if data is None:
        return None
    from dlrun.training.tracking import Tracking

    return Tracking(**data)


def _clear_session() -> None:
    import sys

    if "keras" in sys.modules:  # free the finished model's graph before the worker's next point
        sys.modules["keras"].backend.clear_session()


def _init_local_worker(events, stop, threads: int) -> None:
    global _events, _stop
    _events, _stop = events, stop
    signal.signal(signal.SIGINT, _on_sigint)
    size_threads(threads)


def _on_sigint(signum, frame) -> None:
    # Ctrl-C reaches every process of the terminal's group: a worker that is training stops and
    # keeps its epochs (train() writes status "interrupted"); an idle one ignores it, instead of
    # dying with a traceback. The driver decides what happens to the sweep.
    if _training:
        raise KeyboardInterrupt


Task = tuple[int, str, list[str], str, dict | None]  # (index, spec path, overrides, out folder, MLflow settings)


class LocalExecutor:
    """Run points in N worker processes (spawned: TensorFlow does not survive a fork)."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.threads = max(1, cores() // jobs)

    def run(self, tasks: list[Task], on_start: Callable[[int], None]) -> Iterator[dict[str, Any]]:
        """Yield each point's result as it finishes; on KeyboardInterrupt, stop what has not started."""
        import multiprocessing
        import queue
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        context = multiprocessing.get_context("spawn")
        events, stop = context.Queue(), context.Event()
        pool = ProcessPoolExecutor(
            max_workers=min(self.jobs, len(tasks)),
            mp_context=context,
            initializer=_init_local_worker,
            initargs=(events, stop, self.threads),
        )
        pending = set()
        for task in tasks:
            future = pool.submit(run_point, *task, self.threads)
            future.dlrun_index = task[0]  # to name the point if its worker dies
            pending.add(future)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(events, on_start, queue.Empty)
                for future in done:
                    yield _result(future)
            _drain(events, on_start, queue.Empty)
        except KeyboardInterrupt:
            stop.set()
            for future in pending:
                future.cancel()
            # Points that were training stop at once (they got the Ctrl-C too) and report it.
            for future in wait(pending).done:
                if not future.cancelled():
                    yield _result(future)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            events.close()


def _drain(events, on_start, empty) -> None:
    while True:
        try:
            kind, index = events.get_nowait()
        except (empty, OSError, ValueError):
            return
        if kind == "start":
            on_start(index)


def _result(future) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as exc:  # the worker process died (killed, out of memory)
        index = getattr(future, "dlrun_index", -1)
        return {
            "index": index,
            "status": "failed",
            "run_dir": None,
            "error": f"the worker process died: {type(exc).__name__}: {exc}",
        }


class RayExecutor:
    """Run points as Ray tasks, one CPU each, on a local Ray instance or an existing cluster.

    Every node must see the spec's CSV and the sweep folder at the same paths (a shared file
    system), and have dlrun installed; run directories are written there by the tasks.
    """

    def __init__(self, jobs: int | None, address: str | None):
        self.jobs = jobs
        self.address = address
        self.threads = 1 if address else max(1, cores() // (jobs or cores()))

    def run(self, tasks: list[Task], on_start: Callable[[int], None]) -> Iterator[dict[str, Any]]:
        """Yield each point's result as it finishes; on KeyboardInterrupt, cancel the rest."""
        ray = import_ray()
        from dlrun.errors import DlrunError

        started_here = not ray.is_initialized()
        if started_here:
            try:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False)
                else:
                    ray.init(num_cpus=self.jobs or cores(), include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise DlrunError(
                    f"cannot start or reach Ray at {self.address or 'a new local instance'}: {exc} "
                    "(check --address: ray://HOST:10001, auto, or leave it out to start Ray locally)"
                ) from None
        remote = ray.remote(num_cpus=1, max_retries=0)(run_point)
        refs = {remote.remote(*task, self.threads): task[0] for task in tasks}
        for index in refs.values():
            on_start(index)  # Ray schedules them; the display counts them as submitted
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                for ref in done:
                    try:
                        yield ray.get(ref)
                    except Exception as exc:  # the task's worker died
                        yield {
                            "index": refs[ref],
                            "status": "failed",
                            "run_dir": None,
                            "error": f"the Ray task failed: {type(exc).__name__}: {exc}",
                        }
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started_here:
                ray.shutdown()


def import_ray():
    """Import Ray, or say how to install it.

    Raises:
        DlrunError: Ray is not installed.
    """
    from dlrun.errors import DlrunError

    try:
        import ray
    except ImportError:
        raise DlrunError(RAY_MISSING) from None
    return ray
