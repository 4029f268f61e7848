"""Hold runs of other processes at an epoch's end (tests/support/sitecustomize.py does the holding).

    holds = Holds(tmp_path / "holds", epoch=1, runs=[2, 3])
    process = subprocess.Popen([...], env=holds.env(ENV))
    held = holds.wait(process)      # {"pid": ..., "run_dir": ...} of the first held run
    holds.release()                 # every held run, and every later one, goes on

Runs are numbered 1, 2, ... over all the processes, in the order they start training.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent / "support"
TIMEOUT_S = 300.0
"""How long a test waits for a run to reach its hold: far more than it needs, even on a busy machine."""


class Holds:
    def __init__(self, folder: Path, epoch: int = 1, runs: list[int] | str | None = "all"):
        """Hold `runs` (their ordinals, or "all") at the end of `epoch`; with runs None, none until `plan`."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if runs is not None:
            self.plan(epoch, runs)

    def plan(self, epoch: int = 1, runs: list[int] | str = "all") -> None:
        """Hold the runs that start from now on: `runs` (ordinals, or "all") at the end of `epoch`."""
        path = self.folder / "plan.json"
        path.with_suffix(".tmp").write_text(json.dumps({"epoch": epoch, "runs": runs}))
        path.with_suffix(".tmp").replace(path)

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """The environment of a process whose runs are held (tests/support first on its PYTHONPATH)."""
        path = os.pathsep.join(filter(None, [str(SUPPORT), base.get("PYTHONPATH")]))
        return {**base, "PYTHONPATH": path, "DLRUN_TEST_HOLD": str(self.folder)}

    def held(self) -> list[dict]:
        """The runs waiting at their hold now or earlier, by ordinal."""
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob("held-*.json"))]

    def started(self) -> int:
        """How many runs have started training."""
        return len(list(self.folder.glob("started-*")))

    def wait(self, process: subprocess.Popen, count: int = 1, also=lambda: True) -> list[dict]:
        """Wait until `count` runs are held (and `also()` holds); fail if the process ends first."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            held = self.held()
            if len(held) >= count and also():
                return held
            if process.poll() is not None:
                raise AssertionError(f"the process ended (exit {process.returncode}) before {count} runs were held")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {count} held runs after {TIMEOUT_S} s")
            time.sleep(0.02)

    def release(self) -> None:
        (self.folder / "release").touch()
