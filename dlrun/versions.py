"""The versions a run or a crash report records: dlrun, Python, TensorFlow, Keras (never importing TensorFlow)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from dlrun import __version__


def versions() -> dict[str, str | None]:
    """Return dlrun's, TensorFlow's, Keras's and Python's versions; None for a package that is not installed."""
    found: dict[str, str | None] = {"dlrun": __version__}
    for name in ("tensorflow", "keras"):
        module = sys.modules.get(name)
        found[name] = getattr(module, "__version__", None) or _installed(name)
    found["python"] = platform.python_version()
    return found


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
