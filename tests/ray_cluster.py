"""A real two-node Ray cluster on this machine, for tests: ``ray start --head`` and ``ray start --address``,
each its own process tree with its own ports, CPUs and custom resource, stopped by process id.

Each node runs ``ray start --block`` in its own session: the ``ray start`` process supervises the node's
processes (GCS, raylet, agents) and takes them down with it, so stopping a node is signalling that one
process, and no ``ray stop`` (which would stop every Ray cluster on the machine) is needed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 180.0
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
"""For the nodes and every driver: ``ray start`` turns token authentication on by itself when a
``~/.ray/auth_token`` exists, a driver only when told, so both are told the same."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nothing listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


WORKER_PORTS = 101
"""Ports per node for Ray's worker processes (``--min-worker-port`` .. ``--max-worker-port``)."""


def free_port_range(count: int, taken: set[int]) -> int:
    """The first port of ``count`` consecutive free ports below the kernel's ephemeral range (where
    :func:`free_ports` and Ray's own random ports come from), overlapping no port in ``taken``.

    A range inside the ephemeral range could hold a port another component was given a moment later
    (seen: the raylet's node-manager port inside the worker-port range, and ``ray start`` refused)."""
    rng = random.Random()  # unseeded on purpose: concurrent test runs must not all try the same range
    for _ in range(200):
        base = rng.randrange(10_000, 32_000 - count)
        ports = range(base, base + count)
        if taken.intersection(ports):
            continue
        held = []
        try:
            for port in ports:
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return base
    raise RuntimeError(f"no {count} consecutive free ports found below 32000")


def _node_ip() -> str:
    """The address Ray gives this machine's nodes (it replaces a loopback address by it)."""
    from ray._private.services import resolve_ip_for_localhost

    return resolve_ip_for_localhost("127.0.0.1")


class RayNode:
    """One ``ray start --block`` process tree."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [RAY, "start", "--block", "--disable-usage-stats", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=ENV,
            )

    def raylet(self) -> psutil.Process | None:
        """The node's raylet process (None before it started or after it died)."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return None
        return next((p for p in children if p.name() == "raylet"), None)

    def stop(self) -> None:
        """Signal the supervising ``ray start`` (it stops its node), then kill what is left of its tree."""
        try:
            tree = [self.process, *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for proc in tree:
            try:
                proc.kill()
            except (psutil.NoSuchProcess, ProcessLookupError):
                pass
        self.process.wait(timeout=30)


class TwoNodeCluster:
    """A head node with resource ``head_node`` and a worker node with resource ``worker_node`` (one unit
    each), ``cpus`` logical CPUs each and a small object store; ``address`` is the GCS address."""

    def __init__(self, cpus: int = 2, object_store_bytes: int = 150 * 2**20) -> None:
        # short: Ray's socket paths under it must stay within 107 bytes
        self.dir = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
        self.cpus, self.store = cpus, object_store_bytes
        (gcs,) = free_ports(1)
        self.ip = _node_ip()
        self.address = f"{self.ip}:{gcs}"
        self.worker: RayNode | None = None
        self.worker_ports: set[int] = set()
        head_args = ["--head", f"--port={gcs}", "--include-dashboard=false", f"--temp-dir={self.dir}"]
        self.head = RayNode([*head_args, *self._node_args("head_node")], self.dir / "head.log")
        self.wait_for_nodes(1)
        self.start_worker()

    def _node_args(self, resource: str) -> list[str]:
        ports = free_ports(6)
        first_worker_port = free_port_range(WORKER_PORTS, self.worker_ports)
        self.worker_ports |= set(range(first_worker_port, first_worker_port + WORKER_PORTS))
        return [
            f"--node-ip-address={self.ip}",
            f"--num-cpus={self.cpus}",
            "--num-gpus=0",
            f'--resources={{"{resource}": 1}}',
            f"--object-store-memory={self.store}",
            f"--node-manager-port={ports[0]}",
            f"--object-manager-port={ports[1]}",
            f"--dashboard-agent-listen-port={ports[2]}",
            f"--dashboard-agent-grpc-port={ports[3]}",
            f"--runtime-env-agent-port={ports[4]}",
            f"--metrics-export-port={ports[5]}",
            f"--min-worker-port={first_worker_port}",
            f"--max-worker-port={first_worker_port + WORKER_PORTS - 1}",
        ]

    def start_worker(self) -> None:
        """(Re)start the worker node and wait until the cluster has both nodes."""
        args = [f"--address={self.address}", *self._node_args("worker_node")]
        self.worker = RayNode(args, self.dir / "worker.log")
        self.wait_for_nodes(2)

    def restart_worker(self) -> None:
        """Start a new worker node once the GCS has marked the old one dead. Until then (seen: ~15 s after
        its raylet was killed) the GCS counts it alive, so waiting for two nodes returned at once, before
        the new node had joined, and a build started then could have its actors sent to the dead node."""
        old = {node for node, kind in self.nodes().items() if kind == "worker_node"}
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            alive = self.nodes()
            if alive and not old.intersection(alive):  # {}: the GCS did not answer this time
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"the GCS still counts the worker node(s) {sorted(old)} alive")
        self.start_worker()

    def nodes(self) -> dict[str, str]:
        """Alive node id -> its custom resource (``head_node`` / ``worker_node``), read from the GCS by a
        short-lived driver process (the test process itself never joins the cluster)."""
        code = (
            "import json, ray\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', include_dashboard=False)\n"
            "alive = [n for n in ray.nodes() if n['Alive']]\n"
            "kind = lambda n: next((r for r in n['Resources'] if r.endswith('_node')), '')\n"
            "kinds = {n['NodeID']: kind(n) for n in alive}\n"
            "print('NODES', json.dumps(kinds))\n"
        )
        try:
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV
            )
        except subprocess.TimeoutExpired:
            return {}
        # Ray may print to stdout too (seen: "(raylet) The node ... has been marked dead ...")
        found = [line for line in out.stdout.splitlines() if line.startswith("NODES ")]
        if out.returncode != 0 or not found:
            return {}
        return json.loads(found[-1].removeprefix("NODES "))

    def wait_for_nodes(self, count: int) -> None:
        deadline = time.time() + START_TIMEOUT_S
        host, port = self.address.split(":")
        while time.time() < deadline:
            if any(n is not None and n.process.poll() is not None for n in (self.head, self.worker)):
                break  # a node's `ray start` gave up: its log says why
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
            except OSError:
                time.sleep(1)
                continue
            if len(self.nodes()) >= count:
                return
            time.sleep(1)
        logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in self.dir.glob("*.log"))
        self.stop()
        raise RuntimeError(f"the Ray cluster did not reach {count} nodes:\n{logs}")

    def stop(self) -> None:
        for node in (self.worker, self.head):
            if node is not None:
                node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
