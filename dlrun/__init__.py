"""dlrun: declarative deep-learning experiments, from YAML or from Python.

`import dlrun` is instant: the API (`dlrun.api`) is imported on first use of one of its names, and
TensorFlow only when something trains or loads a model.

    import dlrun
    run = dlrun.train("configs/06.yaml", data=frame)
    run.history
"""

__version__ = "0.1.0"

_API = (
    "Best",
    "DataError",
    "DlrunError",
    "Run",
    "Spec",
    "SpecError",
    "Summary",
    "TrainingError",
    "compare",
    "load_run",
    "load_spec",
    "resume",
    "runs",
    "sweep",
    "train",
    "tune",
)


def __getattr__(name: str):
    if name == "runs":  # the package dlrun.runs, callable as the API's runs(folder)
        import dlrun.runs

        return dlrun.runs
    if name in _API:
        from dlrun import api

        return getattr(api, name)
    raise AttributeError(f"module 'dlrun' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
