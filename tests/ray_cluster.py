"""Real Ray clusters on this machine for the tests: `ray start --head --block` and more nodes with
`ray start --block --address ...`, each in its own process group with its own temp dir and free
ports, all killed at the end (never `ray stop`: no other Ray on the machine is touched).

Used by ``test_multinode.py`` (a head and a second node) and ``test_submit_cluster.py`` (a head).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import pytest

from dynocc.factory.testing.procs import descendants, parents, title
from support import cli_env, free_port, wait_for

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")


def ray_env() -> dict[str, str]:
    """cli_env() with the venv's bin first on PATH (`ray`, and `dynocc` for the jobs the head runs)."""
    return cli_env(PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))


# --------------------------------------------------------------------------- the cluster


def _node_ports() -> list[str]:
    """Free ports for everything a node listens on (the defaults would collide with other Rays)."""
    return [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"]


@dataclass
class Node:
    proc: subprocess.Popen
    temp_dir: str  # short (/tmp/...): Ray's socket paths must stay < 108 bytes
    log: object
    node_id: str = ""
    descendants: set = field(default_factory=set)

    @property
    def log_path(self) -> Path:
        return Path(self.temp_dir) / "ray_start.log"

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def remember_descendants(self) -> None:
        """The processes this node started (Ray workers start their own sessions, so the process
        group does not hold them all): killed at the end if they outlive the node."""
        self.descendants.update(descendants(self.proc.pid))

    def raylet(self) -> Optional[int]:
        """The pid of this node's raylet (in the `ray start` process group)."""
        for pid in parents():
            try:
                if os.getpgid(pid) != self.proc.pid:
                    continue
            except OSError:
                continue
            argv0 = title(pid).split(" ", 1)[0]
            if argv0.endswith("/raylet"):
                return pid
        return None

    def stop(self) -> None:
        self.remember_descendants()
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # what is left of its process group (`ray start` may exit before its children)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


def _start_node(args: list[str], prefix: str) -> Node:
    temp_dir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    log = open(Path(temp_dir) / "ray_start.log", "wb")
    proc = subprocess.Popen([RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                             f"--temp-dir={temp_dir}", *_node_ports(), *args],
                            stdout=log, stderr=subprocess.STDOUT, env=ray_env(), start_new_session=True)
    return Node(proc, temp_dir, log)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


@dataclass
class Cluster:
    gcs: str  # 127.0.0.1:PORT, for `dynocc mine --address`
    dashboard: str  # http://127.0.0.1:PORT, for `dynocc submit --address` and `ray list`
    head: Node
    second_nodes: list = field(default_factory=list)

    def nodes(self) -> list[dict]:
        """`ray list nodes` (node_id, state, is_head_node, resources_total); [] when it does not answer."""
        try:
            r = subprocess.run([RAY, "list", "nodes", f"--address={self.dashboard}", "--format=json", "--limit=100"],
                               capture_output=True, text=True, env=ray_env(), timeout=60)
            return json.loads(r.stdout) if r.returncode == 0 else []
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            return []

    def alive(self) -> list[dict]:
        return [n for n in self.nodes() if n.get("state") == "ALIVE"]

    def status(self) -> str:
        try:
            r = subprocess.run([RAY, "status", f"--address={self.gcs}"], capture_output=True, text=True, env=ray_env(),
                               timeout=60)
            return r.stdout + r.stderr
        except subprocess.TimeoutExpired:
            return "(ray status did not answer)"

    def add_second_node(self) -> Node:
        """`ray start --address` with 2 CPUs and a ``second_node`` resource; returns once the cluster
        lists it ALIVE (its node id set)."""
        node = _start_node([f"--address={self.gcs}", "--num-cpus=2", '--resources={"second_node": 1}'], "rayw-")
        self.second_nodes.append(node)

        def registered() -> Optional[str]:
            ids = [n["node_id"] for n in self.alive() if (n.get("resources_total") or {}).get("second_node")]
            return ids[0] if ids else None

        try:
            node.node_id = wait_for(registered, timeout=120, what="the second Ray node", interval=0.5, alive=node.proc)
        except AssertionError as e:
            pytest.fail(f"{e}\n{node.log_tail()}", pytrace=False)
        return node

    def head_id(self) -> str:
        heads = [n["node_id"] for n in self.alive() if n.get("is_head_node")]
        assert len(heads) == 1, self.nodes()
        return heads[0]

    def diagnostics(self) -> str:
        """What to show when a job hangs: `ray status` and the tails of the nodes' raylet logs."""
        parts = [self.status()]
        for node in [self.head, *self.second_nodes]:
            for log in sorted(Path(node.temp_dir).glob("session_*/logs/raylet.out"))[-1:]:
                parts.append(f"--- {log}\n{log.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


@contextmanager
def ray_cluster(num_cpus: int) -> Iterator[Cluster]:
    """A Ray head with ``num_cpus`` CPUs, its dashboard / job server on 127.0.0.1 (answering before
    this yields); killed at the end, with every node added and all they started."""
    from ray._private.utils import get_dashboard_dependency_error

    missing = get_dashboard_dependency_error()
    if missing is not None:
        pytest.fail(f"the Ray dashboard / job server cannot start here: {missing} (it needs the ray[default] "
                    f"extras: pip install 'ray[default]==2.60.0')", pytrace=False)
    port, dashboard = free_port(), free_port()
    head = _start_node(["--head", f"--port={port}", f"--num-cpus={num_cpus}", "--include-dashboard=true",
                        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                        f"--ray-client-server-port={free_port()}"], "rayh-")
    c = Cluster(f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}", head)
    try:
        try:
            wait_for(lambda: "Ray runtime started" in head.log_tail(100_000), timeout=120, what="the Ray head",
                     interval=0.2, alive=head.proc)
            wait_for(lambda: _answers(f"{c.dashboard}/api/version"), timeout=90, what="the head's job server",
                     interval=0.5, alive=head.proc)
        except AssertionError as e:
            pytest.fail(f"{e}\n{head.log_tail()}", pytrace=False)
        yield c
    finally:
        for node in [*c.second_nodes, head]:
            node.stop()
        # Ray workers run in their own sessions; they exit with their raylet, but make sure.
        leftovers = set().union(*(n.descendants for n in [*c.second_nodes, head]))
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for node in [*c.second_nodes, head]:
            shutil.rmtree(node.temp_dir, ignore_errors=True)
