"""A Ray cluster of two nodes on 127.0.0.1 for the tests: a head and a second node, each with one CPU.

`ray start --head` and `ray start --address` daemonize their processes, so each node gets its own
temporary folder and is stopped by killing exactly the processes whose command line names that folder
(never `ray stop`, which stops every Ray instance on the machine). A token of the cluster's own keeps
other Ray instances (and their auth tokens) apart.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from conftest import free_port
from holds import Holds


@dataclass
class Cluster:
    address: str
    env: dict[str, str]
    head_dir: Path
    node2_dir: Path
    holds: Holds
    """Holds for the runs of the cluster's workers (none until a test plans them: `holds.plan(...)`)."""
    hidden: Path | None
    """A folder the second node does not see (an empty tmpfs over it, in its own mount namespace); None
    where this process may not make one (not root)."""

    def node_ids(self) -> dict[str, str]:
        """Return {"head": its node id, "node2": its node id}, by the node2 resource."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, log_to_driver=False); "
            "print(json.dumps({('node2' if 'node2' in n['Resources'] else 'head'): n['NodeID'] "
            "for n in ray.nodes() if n['Alive']}))"
        )
        done = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def dlrun(self, *args: str) -> subprocess.CompletedProcess:
        """Run a dlrun command as a driver of this cluster (Ray reads its token from the environment at import)."""
        command = [sys.executable, "-m", "dlrun", *args]
        # a guard against a hang only, far above what a busy machine needs (it took over 300 s beside tests/stress.sh)
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=1800)

    def kill_node2(self) -> list[int]:
        """Kill every process of the second node (its raylet and workers) at once; return their pids."""
        return kill_under(self.node2_dir)


def _ray() -> str:
    return str(Path(sys.executable).with_name("ray"))


def start() -> Cluster:
    """Start a head and a second node joined to it (one CPU each, the second with resource node2)."""
    root = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: Ray's socket paths are limited to 107 bytes
    head_dir, node2_dir = root / "h", root / "n"
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        # a lost node is noticed in about a second, not Ray's default half a minute
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_timeout_ms": "1000",
        "RAY_health_check_failure_threshold": "2",
    }
    holds = Holds(root / "holds", runs=None)
    env = holds.env(env)  # the nodes' workers inherit it
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    head = [_ray(), "start", "--head", "--port", str(port), "--temp-dir", str(head_dir), "--include-dashboard", "false"]
    node2 = [_ray(), "start", "--address", address, "--temp-dir", str(node2_dir), "--resources", '{"node2": 1}']
    hidden = root / "hidden" if os.geteuid() == 0 and shutil.which("unshare") else None
    if hidden is not None:  # the second node's processes see an empty folder there: as a machine without the share
        hidden.mkdir()
        mount = 'mount -t tmpfs tmpfs "$0" && exec "$@"'
        node2 = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, str(hidden), *node2]
    cluster = Cluster(address, env, head_dir, node2_dir, holds, hidden)
    try:
        for command in (head + common, node2 + common):
            done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=root)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command[:3])} failed: {done.stderr[-2000:]}")
    except BaseException:
        stop(cluster)
        raise
    return cluster


def stop(cluster: Cluster) -> None:
    """Kill the second node's processes, then the head's; remove their folders."""
    kill_under(cluster.node2_dir)
    kill_under(cluster.head_dir)
    shutil.rmtree(cluster.head_dir.parent, ignore_errors=True)


def kill_under(folder: Path) -> list[int]:
    """SIGKILL every process whose command line names `folder` (a Ray node's temporary folder), with its children.

    A node's workers are its raylet's children; their command lines need not name the folder.
    """
    needle = str(folder).encode()
    parents: dict[int, int] = {}
    targets: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            stat = (proc / "stat").read_text()
            parents[int(proc.name)] = int(stat[stat.rfind(")") + 2 :].split()[1])
            if needle in (proc / "cmdline").read_bytes():
                targets.add(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    grown = True
    while grown:  # their children, and theirs
        more = {pid for pid, parent in parents.items() if parent in targets and pid not in targets}
        targets |= more
        grown = bool(more)
    for pid in sorted(targets):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return sorted(targets)
