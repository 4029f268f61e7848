"""dlrun's side of an Optuna study: storages, samplers, pruners, the search space as Optuna sees it, trial counting.

Used by the tune driver (`dlrun.search.tune`) and by each trial's worker (`dlrun.search.trial`), which
open the same storage. Optuna is imported inside the functions, so nothing here costs a command that
does not tune.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from dlrun import databases
from dlrun.errors import DlrunError, warn
from dlrun.spec.yamltext import value_text

OPTUNA_MISSING = 'dlrun tune needs Optuna, which is not installed: pip install "dlrun[tune]"'
JOURNAL_FILE = "study.log"
"""The default storage, in the tune folder: Optuna's journal file (see docs/tune.md for why not SQLite)."""
RETRY = "dlrun.retry"
"""User attribute of a failed trial whose point is tried again (its worker died, or it was interrupted):
it does not count toward the trial count, and a copy of it waits in the study."""
STATUS, ERROR, RUN_DIR, OWNER = "dlrun.status", "dlrun.error", "dlrun.run_dir", "dlrun.owner"
OVERRIDES = "dlrun.overrides"
"""User attribute: the trial's `--set` overrides, as its run's overrides.txt holds them."""
SURPLUS = "dlrun.surplus"
"""User attribute of a trial asked when other processes had just filled the trial count: failed at once, not run."""
SIGNATURE = "dlrun"
"""The study's user attribute that says what it searches (spec, constants, space, objective): a process
that joins the study must search the same."""


class SamplerKind(str, Enum):
    """How the next trial's values are picked."""

    tpe = "tpe"
    """Tree-structured Parzen estimator (Optuna's default): random first, then near the best trials."""
    random = "random"
    """Uniformly at random."""
    cmaes = "cmaes"
    """CMA-ES (needs the cmaes package): for numeric spaces; choices are sampled at random."""
    grid = "grid"
    """Every combination once, in a seeded order: choices, ints and floats with a step."""


class PrunerKind(str, Enum):
    """How hopeless trials are stopped early."""

    median = "median"
    """Stop a trial whose best value so far is worse than the median of finished trials at the same epoch."""
    hyperband = "hyperband"
    """Hyperband: brackets of trials that train ever more epochs, the better ones only."""
    none = "none"
    """Never stop a trial early (its epochs are still reported, for the dashboard)."""


class Direction(str, Enum):
    """Whether the objective should go down or up."""

    min = "min"
    max = "max"


def import_optuna():
    """Import Optuna, quietly (dlrun says what happens), or say how to install it.

    Raises:
        DlrunError: Optuna is not installed.
    """
    try:
        import optuna
    except ImportError:
        raise DlrunError(OPTUNA_MISSING) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# --- storage ----------------------------------------------------------------------------------


def storage_url(given: str | None, tune_dir: Path) -> str:
    """Return where a study lives, as every process must open it: a database URL, or a journal file's absolute path.

    Default: the journal file in the tune folder. A relative path (or `sqlite:///relative.db`) is made absolute.
    """
    if not given:
        return str((Path(tune_dir) / JOURNAL_FILE).resolve())
    if given.startswith("sqlite:///") and not given.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(given.removeprefix("sqlite:///")).resolve())
    if "://" in given:
        return given
    return str(Path(given).expanduser().resolve())


_storages: dict[str, Any] = {}


def open_storage(url: str):
    """Open a storage once per process: a database by URL (SQLite waits up to a minute for a lock), a
    Redis journal (`redis://`), or a journal file by path.

    Raises:
        DlrunError: the database cannot be reached, or its driver is not installed.
    """
    if "://" not in url:  # before every use: the file may have been cut since this process opened it
        if repair_journal(Path(url), every_record=url not in _storages) is not None:
            _storages.pop(url, None)  # what it read of the file is not what the file holds now
    if url in _storages:
        return _storages[url]
    optuna = import_optuna()
    try:
        if url.startswith("redis://"):
            from optuna.storages.journal import JournalRedisBackend

            storage = optuna.storages.JournalStorage(JournalRedisBackend(url))
        elif "://" in url:  # Optuna creates the tables of a new database: once, though processes start together
            kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {}
            storage = databases.open_once(url, lambda: optuna.storages.RDBStorage(url, engine_kwargs=kwargs))
        else:
            from optuna.storages.journal import JournalFileBackend

            Path(url).parent.mkdir(parents=True, exist_ok=True)
            storage = optuna.storages.JournalStorage(JournalFileBackend(url))
    except DlrunError:
        raise
    except ImportError as exc:
        raise DlrunError(f"--storage {url}: its driver is not installed ({exc}); pip install it") from None
    except Exception as exc:  # SQLAlchemy's many errors: a bad URL, a server that is down, no permission
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DlrunError(f"cannot open the study storage {shown(url)}: {reason}") from None
    _storages[url] = storage
    return storage


def repair_journal(path: Path, every_record: bool = True) -> Path | None:
    """Set aside a journal file's cut last record (a crash or a full disk while Optuna appended it).

    Optuna reads a journal up to its last whole line, but appends after whatever the file ends with: the
    next record would join the fragment and make the study unreadable. So the fragment is moved, under the
    journal's own lock, to `<journal>.cut-<n>` (a warning says where) before anything is appended.

    Args:
        every_record: also check that each record before the last is whole JSON (once per process).

    Returns:
        The file that keeps the fragment, or None when the journal was whole.

    Raises:
        DlrunError: a record before the last one is not whole JSON (nothing is written then).
    """
    if not path.is_file() or path.stat().st_size == 0:
        return None
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with open(path, "rb") as file:
            data = file.read()
        end = data.rfind(b"\n") + 1
        if every_record:
            _check_records(path, data[:end])
        if end == len(data):
            return None
        kept = path.with_name(f"{path.name}.cut-1")
        while kept.exists():
            kept = path.with_name(f"{path.name}.cut-{int(kept.name.rpartition('-')[2]) + 1}")
        kept.write_bytes(data[end:])
        with open(path, "r+b") as file:
            file.truncate(end)
            file.flush()
            os.fsync(file.fileno())
    finally:
        lock.release()
    warn(
        f"the last record of {path} was cut short (a crash or a full disk while it was written); "
        f"it is set aside in {kept.name}, and the study goes on from the records before it, as Optuna reads it"
    )
    return kept


def _check_records(path: Path, data: bytes) -> None:
    import json

    for number, line in enumerate(data.splitlines(), start=1):
        try:
            json.loads(line)
        except ValueError:
            raise DlrunError(
                f"{path} line {number} is not a whole record (a write was cut short, then records were appended "
                "after it): Optuna cannot read the study past it; keep a copy of the file and delete that line, "
                "or start a new tune"
            ) from None


def shown(url: str) -> str:
    """Write a storage URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.partition(':')[0]}:***@{tail}"


# --- the space, as Optuna sees it -------------------------------------------------------------


@dataclass
class Space:
    """The search space: each spec path's distribution in the spec's mapping form, in order."""

    entries: dict[str, dict[str, Any]]

    def optuna(self) -> dict[str, Any]:
        """Return Optuna's distributions by parameter name (the spec path)."""
        optuna = import_optuna()
        found = {}
        for path, entry in self.entries.items():
            if entry["type"] == "choice":
                found[path] = optuna.distributions.CategoricalDistribution([_choice_key(v) for v in entry["choices"]])
            elif entry["type"] == "int":
                found[path] = optuna.distributions.IntDistribution(
                    entry["low"], entry["high"], log=entry.get("log", False), step=entry.get("step", 1)
                )
            else:
                found[path] = optuna.distributions.FloatDistribution(
                    entry["low"], entry["high"], log=entry.get("log", False), step=entry.get("step")
                )
        return found

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """Turn a trial's parameters into `--set` overrides (a choice's value as the spec wrote it)."""
        texts = []
        for path, entry in self.entries.items():
            value = params[path]
            if entry["type"] == "choice":
                value = {_choice_key(v): v for v in entry["choices"]}[value]
            texts.append(f"{path}={value_text(value)}")
        return texts

    def grid(self) -> dict[str, list[Any]]:
        """Return every value of each path, for the grid sampler.

        Raises:
            DlrunError: a path whose values are not a short list (a float without step, a log scale).
        """
        grid = {}
        for path, entry in self.entries.items():
            if entry["type"] == "choice":
                grid[path] = [_choice_key(v) for v in entry["choices"]]
                continue
            step = entry.get("step") or (1 if entry["type"] == "int" else None)
            if entry.get("log") or step is None:
                raise DlrunError(
                    f"--sampler grid needs a finite list of values for {path}: give its range a step "
                    f"(float({entry['low']}, {entry['high']}, step=...)) or list the values with choice(...)"
                )
            count = math.floor((entry["high"] - entry["low"]) / step + 1e-9) + 1
            if count > 1000:
                raise DlrunError(f"--sampler grid: {path} would take {count} values; use a larger step or choice(...)")
            values = [entry["low"] + i * step for i in range(count)]
            grid[path] = [round(v, 12) if isinstance(v, float) else v for v in values]
        return grid

    def grid_size(self) -> int:
        return math.prod(len(values) for values in self.grid().values())


def _choice_key(value: Any) -> Any:
    """How Optuna stores a choice: numbers, names, booleans and null as they are, lists and mappings as YAML text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else value_text(value)


# --- samplers and pruners ---------------------------------------------------------------------


def check_sampler(kind: SamplerKind) -> None:
    """Refuse a sampler whose package is missing, before any work.

    Raises:
        DlrunError: cmaes without the cmaes package.
    """
    if kind == SamplerKind.cmaes:
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise DlrunError(
                '--sampler cmaes needs the cmaes package, which is not installed: pip install "dlrun[tune]" '
                "(or pip install cmaes), or pick another --sampler"
            ) from None


def make_sampler(kind: str, seed: int, space: Space):
    """Build the sampler of a study: the grid's order is fixed by the seed; the others are seeded per trial.

    Seeding each trial by (seed, trial number) makes a study repeat, and keeps processes that share it
    (or a resumed one) from drawing the same values again.
    """
    optuna = import_optuna()
    if kind == SamplerKind.grid:

        class Grid(optuna.samplers.GridSampler):
            def after_trial(self, study, trial, state, values) -> None:
                pass  # Optuna's stops `optimize` once the grid is done; the trial count (the grid's size) does here

        return Grid(space.grid(), seed=seed)
    makers = {
        SamplerKind.tpe: lambda s: optuna.samplers.TPESampler(seed=s, constant_liar=True),
        SamplerKind.random: lambda s: optuna.samplers.RandomSampler(seed=s),
        SamplerKind.cmaes: lambda s: optuna.samplers.CmaEsSampler(seed=s, warn_independent_sampling=False),
    }
    return _per_trial(optuna)(makers[SamplerKind(kind)], seed)


def _per_trial(optuna):
    class PerTrialSeed(optuna.samplers.BaseSampler):
        """A sampler made afresh for each trial, seeded by (seed, trial number); its state lives in the study."""

        def __init__(self, make, seed: int):
            self._make, self._seed = make, seed
            self._inner = make(seed)

        def before_trial(self, study, trial) -> None:
            self._inner = self._make(trial_seed(self._seed, trial.number))
            self._inner.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self._inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values) -> None:
            self._inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._inner.reseed_rng()

    return PerTrialSeed


def trial_seed(seed: int, number: int) -> int:
    """Return the sampler seed of trial `number` of a study seeded with `seed`."""
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def make_pruner(settings: dict[str, Any]):
    """Build the pruner that `settings` describe ({kind, startup, warmup, epochs}), the same in every process."""
    optuna = import_optuna()
    kind = settings["kind"]
    if kind == PrunerKind.median:
        return optuna.pruners.MedianPruner(n_startup_trials=settings["startup"], n_warmup_steps=settings["warmup"])
    if kind == PrunerKind.hyperband:
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, settings["warmup"]), max_resource=settings["epochs"], reduction_factor=3
        )
    return optuna.pruners.NopPruner()


# --- the study --------------------------------------------------------------------------------


def open_study(url: str, name: str, direction: str, sampler, pruner, signature: dict[str, Any]):
    """Create the study, or join the one of that name in the storage if it searches the same.

    Raises:
        DlrunError: the storage cannot be opened, or the study of that name searches something else.
    """
    optuna = import_optuna()
    storage = open_storage(url)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=sampler,
        pruner=pruner,
        direction="minimize" if direction == Direction.min else "maximize",
        load_if_exists=True,
    )
    found = study.user_attrs.get(SIGNATURE)
    if found is None:  # read back: of processes that start together, one whose signature another overwrote is refused
        study.set_user_attr(SIGNATURE, signature)
        found = study.user_attrs.get(SIGNATURE)
    if found != signature:
        differs = [key for key in signature if found.get(key) != signature[key]]
        raise DlrunError(
            f"study {name!r} in {shown(url)} searches something else (its {', '.join(differs)} differ); "
            "give this search its own --study NAME, or run the command that started that study"
        )
    return study


def counted(trials) -> int:
    """Count the trials toward the trial count: all but the failures tried again and the surplus ones."""
    return sum(1 for trial in trials if not left_out(trial))


def left_out(trial) -> bool:
    """Tell whether a trial is left out of counts and tables: a failure tried again, or a surplus trial."""
    return trial.state.name == "FAIL" and bool(trial.user_attrs.get(RETRY) or trial.user_attrs.get(SURPLUS))


def owner() -> dict[str, Any]:
    """The user attribute that says which process runs a trial (as a lock file names its writer)."""
    from dlrun.runs.lock import this_process

    return {OWNER: this_process()}


def owner_gone(trial) -> bool:
    """Tell whether a running trial's process is gone: dead on this machine, or never named (and long started).

    A process on another machine counts as alive: dlrun cannot see it.
    """
    import datetime

    from dlrun.runs.lock import Holder

    named = trial.user_attrs.get(OWNER)
    if not isinstance(named, dict):
        started = trial.datetime_start
        return started is None or (datetime.datetime.now() - started).total_seconds() > 60
    return not Holder(Path(), int(named["pid"]), str(named["host"]), named.get("started")).alive()


# --- Optuna's trials through its public API: a trial by its number --------------------------------


def trial_id(url: str, study_name: str, number: int) -> int:
    """Return the storage's id of trial `number` of a study (`BaseStorage`'s public methods, not `trial._trial_id`)."""
    storage = open_storage(url)
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)


def set_user_attrs(url: str, study_name: str, number: int, attrs: dict[str, Any]) -> None:
    """Set user attributes of trial `number` of a study, whichever process asked for it."""
    storage = open_storage(url)
    found = trial_id(url, study_name, number)
    for key, value in attrs.items():
        storage.set_trial_user_attr(found, key, value)
