"""What a sweep worker does with one point (`run_point`), and the Ray executor that runs points as tasks.

A point is a spec file plus its overrides; a worker loads, trains, and returns a plain dict, so
failures (a bad override, a NaN loss) come back as results instead of stopping the sweep; a point
whose worker died comes back as `died`. The local worker processes are in `dlrun.search.pool`.
Nothing here imports TensorFlow at module level: the driver never needs it.
"""

from __future__ import annotations

import os
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


REUSE = True
"""Whether a worker keeps what consecutive points share (`dlrun.training.reuse`); the tests turn it off to compare."""
_training = False  # a Ctrl-C only interrupts a worker while it trains (see on_interrupt)
_interrupted = False  # a Ctrl-C arrived: the point in progress stops, and no other starts
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
    index: int,
    spec_path: str,
    overrides: list[str],
    out: str,
    tracking: dict | None,
    threads: int,
    callbacks: Callable[[], list] | None = None,
) -> dict[str, Any]:
    """Train one point of a sweep into `out` and say how it went; log it to MLflow as `tracking` says, if given.

    Args:
        callbacks: Makes more Keras callbacks for the fit (a tune trial's pruning), called once
            TensorFlow's thread pools are sized; what it raises fails the point like any error.

    Returns:
        {"index", "status" (completed / early-stopped / nan / interrupted / failed), "run_dir" (or
        None when training never started), "error" (a message, or None), "retry" (whether
        `--resume` should train it again although it failed: only when its worker died), "node" (where
        it ran: `dlrun.versions.node`)}.
    """
    global _training
    from dlrun.versions import node

    result: dict[str, Any] = {"index": index, "status": "failed", "run_dir": None, "error": None, "retry": False}
    result["node"] = node()
    if _interrupted:
        return result | {"status": "interrupted", "error": "not started: the sweep was interrupted"}
    _training = True
    try:
        from dlrun.errors import DlrunError, TrainingError

        try:
            size_threads(threads)
            from dlrun.spec.loader import load_spec
            from dlrun.training.fit import train
            from dlrun.training.reuse import keeping

            spec = load_spec(spec_path, overrides)
            extra = callbacks() if callbacks is not None else None
            with keeping(REUSE):  # the next point of the same data section skips reading it (unless it changed)
                outcome = train(spec, Path(out), overrides, quiet=True, tracking=_tracking(tracking), callbacks=extra)
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


def died(index: int, how: str) -> dict[str, Any]:
    """The result of a point whose worker died under it (killed, out of memory, a lost node).

    A crash says nothing about the point, unlike a NaN loss or an invalid spec: `retry` tells
    `--resume` to train it again.
    """
    return {
        "index": index,
        "status": "failed",
        "run_dir": None,
        "error": f"the worker process training this point died ({how}); `dlrun sweep --resume` trains it again",
        "retry": True,
        "died": how,
    }


def _clear_session() -> None:
    import sys

    if "keras" in sys.modules:  # free the finished model's graph before the worker's next point
        # Python's own collector frees what is left in cycles: a full collection here costs a point a
        # quarter of a second, more than its epochs on small data
        sys.modules["keras"].backend.clear_session(free_memory=False)


def on_interrupt(signum, frame) -> None:
    """Handle SIGINT in a local worker process (see `dlrun.search.pool`)."""
    # Ctrl-C reaches every process of the terminal's group, and the driver forwards it too (it may
    # have come to the driver alone): a worker that is training stops once and keeps its epochs
    # (train() writes status "interrupted"); an idle one starts nothing more, instead of dying
    # with a traceback. The driver decides what happens to the sweep.
    global _interrupted
    if _interrupted:
        return  # the second copy of the same Ctrl-C must not interrupt the saving of the first
    _interrupted = True
    if _training:
        raise KeyboardInterrupt


Task = tuple[int, str, list[str], str, dict | None]  # (index, spec path, overrides, out folder, MLflow settings)
Work = Callable[..., dict[str, Any]]
"""What a worker does with a task: `run_point(*task, threads)` for a sweep; a tune trial's function likewise."""
Tasks = list[Task] | Callable[[], Task | None]
"""The tasks to run: a list (a sweep's points), or a function asked for the next one whenever a worker is
free, returning None when there is none for now (a tune's trials: asked one by one, after the last result)."""


class TaskQueue:
    """The tasks an executor has yet to start, from a list or a function asked when a worker is free."""

    def __init__(self, tasks: Tasks):
        self._next_task = tasks if callable(tasks) else iter(list(tasks)).__next__
        self._ahead: Task | None = None
        self._closed = False

    def peek(self) -> Task | None:
        """Return the next task without taking it (asks the function for one if none is waiting); None if none."""
        if self._ahead is None and not self._closed:
            try:
                self._ahead = self._next_task()
            except StopIteration:
                self._ahead = None
        return self._ahead

    def pop(self) -> Task | None:
        """Take the next task (None if none)."""
        task, self._ahead = self.peek(), None
        return task

    def close(self) -> None:
        """Start nothing more: the task waiting is dropped, and the function is not asked again."""
        self._closed, self._ahead = True, None


class RayExecutor:
    """Run points as Ray tasks, one CPU each, on a local Ray instance or an existing cluster.

    Every node must see the spec's CSV and the sweep folder at the same paths (a shared file
    system), and have dlrun installed; run directories are written there by the tasks. On a cluster
    each node is asked first whether it sees the folder (`check_shared`). A task whose worker or node
    died is submitted once more when `retry_lost` (a sweep's points; a tune retries its trials itself),
    its result then saying what was lost (`lost`).
    """

    def __init__(self, jobs: int | None, address: str | None, work: Work = run_point, retry_lost: bool = True):
        self.jobs = jobs
        self.address = address
        self.threads = 1 if address else max(1, cores() // (jobs or cores()))
        self.work = work
        self.retry_lost = retry_lost

    def run(self, tasks: Tasks, on_start: Callable[[int], None]) -> Iterator[dict[str, Any]]:
        """Yield each point's result as it finishes; on KeyboardInterrupt, cancel the rest.

        As many tasks are submitted as Ray has CPUs for (`--jobs` locally); each result makes room for the next.
        """
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
        remote = ray.remote(num_cpus=1, max_retries=0)(self.work)
        slots = self.jobs if self.jobs and not self.address else max(1, int(ray.cluster_resources().get("CPU", 1)))
        queue = TaskQueue(tasks)
        refs: dict[Any, Task] = {}
        lost: dict[int, list[str]] = {}  # point index -> what its lost attempts said

        def submit() -> None:
            while len(refs) < slots and (task := queue.pop()) is not None:
                task = (*task[:3], str(Path(task[3]).resolve()), *task[4:])  # a Ray worker's folder is not ours
                refs[remote.remote(*task, self.threads)] = task
                on_start(task[0])  # Ray schedules it; the display counts it as submitted

        try:
            if self.address and (first := queue.peek()) is not None:
                check_shared(ray, Path(first[3]))
            submit()
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
                for ref in done:
                    task = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # the task's worker died, or its node
                        result = _ray_failure(ray, task[0], exc)
                    if result.get("retry") and self.retry_lost and task[0] not in lost:
                        lost[task[0]] = [f"its worker or node died ({result.get('died') or result['error']})"]
                        refs[remote.remote(*task, self.threads)] = task  # once more, wherever Ray has room
                        continue
                    if task[0] in lost:
                        result["lost"] = lost.pop(task[0])
                    yield result
                submit()
        except KeyboardInterrupt:
            queue.close()
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started_here:
                ray.shutdown()


SHARED_TOKEN = ".dlrun-shared"
"""The file a driver writes in its sweep or tune folder for each Ray node to read back (`check_shared`)."""


def check_shared(ray, folder: Path) -> None:
    """Make sure every Ray node sees `folder` (the driver's --out, where tasks write their runs) as the driver does.

    Raises:
        DlrunError: a node does not see the folder, or sees another one at that path.
    """
    import secrets

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from dlrun.errors import DlrunError

    token = secrets.token_hex(16)
    path = Path(folder).resolve() / SHARED_TOKEN
    path.write_text(token, encoding="utf-8")
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(_reads)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = {
            probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                str(path)
            ): n
            for n in nodes
        }
        for ref, node in refs.items():
            if ray.get(ref) != token:
                raise DlrunError(
                    f"--out {folder.parent.parent}: the Ray node {node['NodeManagerAddress']} "
                    f"({node['NodeID'][:12]}) does not see {folder} as this machine does; a cluster needs --out "
                    "on storage every node mounts at the same path (NFS, a shared disk)"
                )
    finally:
        path.unlink(missing_ok=True)


def _reads(path: str) -> str | None:
    """Read a file on a Ray node (None if it is not there)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return None


def _ray_failure(ray, index: int, exc: Exception) -> dict[str, Any]:
    """A point whose Ray task raised: its worker or node died (retried by `--resume`), or Ray failed it."""
    crashes = tuple(
        getattr(ray.exceptions, name)
        for name in (
            "WorkerCrashedError",
            "OutOfMemoryError",
            "NodeDiedError",
            "LocalRayletDiedError",
            "ObjectLostError",
        )
        if hasattr(ray.exceptions, name)
    )
    reason = str(exc).strip().splitlines()[0].partition(". ")[0] if str(exc).strip() else ""
    if isinstance(exc, crashes):
        return died(index, f"Ray: {type(exc).__name__}{': ' + reason if reason else ''}")
    return {
        "index": index,
        "status": "failed",
        "run_dir": None,
        "error": f"the Ray task failed: {type(exc).__name__}: {reason}",
        "retry": False,
    }


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
