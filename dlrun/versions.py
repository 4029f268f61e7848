"""What a run or a crash report records of where it ran: dlrun's, Python's, TensorFlow's and Keras's versions
(never importing TensorFlow), and the machine (`node`: its host, and its Ray node inside a Ray task)."""

from __future__ import annotations

import platform
import socket
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


def node() -> dict[str, str]:
    """Return where this process runs: the host name, and inside a Ray task its node's id and IP address."""
    found = {"host": socket.gethostname()}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        context = ray.get_runtime_context()
        found["ray_node"] = context.get_node_id()
        found["ip"] = ray.util.get_node_ip_address()
    return found
