"""Processes that open the same new storage at the same moment: a barrier per round, then dlrun's own open.

`start_together(urls)` starts 4 processes once; for each URL in turn (a new storage each round) every
process says it is ready, waits for the go file, opens the study (`dlrun.search.study.open_study`),
asks one trial and tells it (or opens an MLflow store through dlrun's client and logs one run). Run as a
script, this module is one of those processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROCESSES = 4
SIGNATURE = {"spec_sha256": "0", "constants": [], "search": {"x": {"type": "float", "low": 0, "high": 1}}}


def start_together(folder: Path, urls: list[str], env: dict[str, str], what: str = "study") -> list[dict]:
    """Run the rounds in PROCESSES processes; return each process's report per round (all rounds, in order).

    Args:
        what: "study" (an Optuna study, one trial told) or "mlflow" (an MLflow store, one run logged).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "urls.json").write_text(json.dumps(urls), encoding="utf-8")
    command = [sys.executable, __file__, str(folder), what]
    racers = []
    try:
        for number in range(PROCESSES):
            with open(folder / f"err-{number}.txt", "w") as err:
                racers.append(subprocess.Popen([*command, str(number)], stderr=err, env=env, start_new_session=True))
        for index in range(len(urls)):
            ready = [folder / f"ready-{index}-{n}" for n in range(PROCESSES)]
            while not all(path.exists() for path in ready):  # every process is at the barrier, its imports done
                for number, racer in enumerate(racers):
                    assert racer.poll() is None, (folder / f"err-{number}.txt").read_text()
                time.sleep(0.01)
            (folder / f"go-{index}").touch()
        for number, racer in enumerate(racers):
            assert racer.wait(timeout=120) == 0, (folder / f"err-{number}.txt").read_text()
    finally:
        for racer in racers:
            if racer.poll() is None:
                os.killpg(racer.pid, 9)
                racer.wait()
    return [json.loads(line) for n in range(PROCESSES) for line in (folder / f"out-{n}.jsonl").read_text().splitlines()]


def _study(url: str) -> None:
    from dlrun.search import study as studies

    space = studies.Space(SIGNATURE["search"])
    sampler = studies.make_sampler("random", 0, space)
    pruner = studies.make_pruner({"kind": "none"})
    study = studies.open_study(url, "s", "min", sampler, pruner, SIGNATURE)
    trial = study.ask(space.optuna())
    study.tell(trial, trial.params["x"])


def _mlflow(url: str) -> None:
    import mlflow

    from dlrun.training import tracking

    client = tracking._Client(mlflow, url)
    run_id = client.create_run(client.experiment_id("together"), "run", {}, None)
    client.end(run_id, "FINISHED")


def _race(folder: Path, what: str, number: int) -> None:
    import sqlalchemy  # noqa: F401  (imports done before the barrier, so the opens start together)

    from dlrun.search import study as studies

    if what == "mlflow":
        import mlflow  # noqa: F401
    else:
        studies.import_optuna()
    urls = json.loads((folder / "urls.json").read_text(encoding="utf-8"))
    with open(folder / f"out-{number}.jsonl", "w", encoding="utf-8") as out:
        for index, url in enumerate(urls):
            (folder / f"ready-{index}-{number}").touch()
            go = folder / f"go-{index}"
            while not go.exists():
                time.sleep(0.0005)
            report = {"round": index, "url": url, "process": number}
            try:
                (_mlflow if what == "mlflow" else _study)(url)
                report["ok"] = True
            except Exception as exc:  # DlrunError, or MLflow's own: the report says which
                report["error"] = f"{type(exc).__name__}: {exc}"
            out.write(json.dumps(report) + "\n")
            out.flush()


if __name__ == "__main__":
    _race(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
