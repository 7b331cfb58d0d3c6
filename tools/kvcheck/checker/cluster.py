"""Five kvd processes in the current network namespace, and the faults the
nemesis injects into them: nft rules on the loopback (partitions), kill -9
and restart, SIGSTOP and SIGCONT.

Node i (0-based, named n<i+1>) listens on 127.0.0.(11+i), binary protocol on
BINARY_PORT and HTTP on HTTP_PORT, and connects to its peers from that
address (CLUSTER.md), so rules that match source and destination addresses
cut exactly the links between nodes; the workload talks to the nodes from
127.0.0.1, which no rule names. Everything it starts it remembers by pid and
stops by pid; the one nft table it creates is deleted by heal_partition()
and stop().

isolate() makes sure all this happens in a network namespace of its own:
it re-executes the command under `unshare -n` unless the namespace already
holds nothing but a loopback (as under tests/integration/in_netns.sh).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from .nemesis import node_name

NODES = 5
BINARY_PORT = 7400
HTTP_PORT = 8080
ENV_REEXEC = "KVCHECK_NETNS"


class ClusterError(Exception):
    """The cluster could not be started or healed; the message says why."""


def ip_of(i):
    return f"127.0.0.{11 + i}"


# ---------------------------------------------------------------- namespace

def _interfaces():
    """The network interfaces of this process's namespace (/proc/self/net/dev
    is per namespace, unlike /sys/class/net)."""
    with open("/proc/self/net/dev", encoding="ascii") as f:
        return [line.split(":")[0].strip() for line in f.readlines()[2:] if ":" in line]


def isolate(argv):
    """Returns None when this process may cut loopback traffic: it is root,
    nft exists, and its network namespace has no interface but lo (brought
    up here). Otherwise re-executes `argv` under `unshare -n` (once), or
    returns the message saying what is missing."""
    if os.geteuid() != 0:
        return ("needs root: it runs five kvd in a network namespace of its own "
                "(unshare -n) and cuts traffic between them with nft")
    for tool in ("nft", "ip", "unshare"):
        if shutil.which(tool) is None:
            return (f"'{tool}' is missing (nft: Debian package nftables; ip: iproute2; "
                    f"unshare: util-linux)")
    if _interfaces() != ["lo"]:
        if os.environ.get(ENV_REEXEC):
            return "still not in a network namespace of its own after unshare -n"
        env = dict(os.environ, **{ENV_REEXEC: "1"})
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvpe("unshare", ["unshare", "-n", "--", sys.executable, *argv], env)
    r = subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"ip link set lo up failed: {r.stderr.strip()}"
    return None


# -------------------------------------------------------------------- nodes

def _get_json(addr, path, timeout=2.0):
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=timeout) as r:
            return json.loads(r.read()) if r.status == 200 else None
    except (OSError, ValueError):
        return None


class Cluster:
    """Five kvd; `workdir` holds their data directories, `logdir` their logs
    (started afresh with the run, appended to across restarts)."""

    def __init__(self, kvd, workdir, logdir, extra_args=(), log=lambda msg: None):
        self.kvd, self.workdir, self.logdir = kvd, workdir, logdir
        self.extra_args, self.log = list(extra_args), log
        self.procs = [None] * NODES
        self.paused = set()
        self.killed = set()          # nodes the nemesis killed, not yet restarted
        self.crashes = []            # (node, exit status) of nodes that exited by themselves
        self.table = f"kvcheck_{os.getpid()}"
        self.table_exists = False
        self.peers = ",".join(self.listen(i) for i in range(NODES))
        # setpriv --pdeathsig: a kvd dies with this process (its parent
        # thread: all spawns happen on the main thread) even if it is killed.
        self.prefix = (["setpriv", "--pdeathsig", "KILL", "--"]
                       if shutil.which("setpriv") else [])

    def listen(self, i):
        return f"{ip_of(i)}:{BINARY_PORT}"

    def http(self, i):
        return f"{ip_of(i)}:{HTTP_PORT}"

    def log_path(self, i):
        return os.path.join(self.logdir, f"{node_name(i)}.log")

    def _spawn(self, i):
        data = os.path.join(self.workdir, node_name(i))
        os.makedirs(data, exist_ok=True)
        argv = [*self.prefix, self.kvd, "--data", data, "--listen", self.listen(i),
                "--http", self.http(i), "--node-id", node_name(i), "--peers", self.peers,
                *self.extra_args]
        mode = "ab" if self.procs[i] is not None else "wb"    # a restart appends
        with open(self.log_path(i), mode) as log:
            # A session of its own: a Ctrl-C on the terminal reaches kvcheck
            # alone, which then stops the nodes itself.
            self.procs[i] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, timeout):
        for i in range(NODES):
            self._spawn(i)
        self.wait_ready(timeout)

    def exited(self):
        """The nodes that exited although nothing killed them."""
        return [i for i, p in enumerate(self.procs) if p is not None and p.poll() is not None]

    def wait_ready(self, timeout, hints=False):
        """Waits (at most `timeout` s) until every node answers GET
        /v1/cluster with "complete": true and every member up, and, with
        `hints`, holds no hint. Raises ClusterError naming the nodes that
        are not, or a node that exited."""
        end = time.monotonic() + timeout
        while True:
            dead = self.exited()
            if dead:
                raise ClusterError(", ".join(f"{node_name(i)} exited with "
                                             f"{self.procs[i].returncode}" for i in dead))
            waiting = [node_name(i) + why for i in range(NODES)
                       for why in [self._not_ready(i, hints)] if why]
            if not waiting:
                return
            if time.monotonic() >= end:
                raise ClusterError(f"after {timeout:.0f}s: " + "; ".join(waiting))
            time.sleep(0.5)

    def _not_ready(self, i, hints):
        c = _get_json(self.http(i), "/v1/cluster")
        if c is None:
            return " does not answer"
        if c.get("complete") is not True:
            return " is not complete"
        down = [m.get("nodeId") for m in c.get("members", []) if m.get("status") != "up"]
        if down:
            return f" sees {down} not up"
        pending = (c.get("failures") or {}).get("hintsPending", 0)
        if hints and pending:
            return f" holds {pending} hints"
        return ""

    # ------------------------------------------------------------ faults

    def _note_crash(self, i):
        p = self.procs[i]
        if p is not None and p.poll() is not None and i not in self.killed:
            self.crashes.append((i, p.returncode))
            self.log(f"cluster: {node_name(i)} exited by itself with status {p.returncode}")
            self.killed.add(i)       # noted once; restarted like a killed node

    def kill(self, i):
        self._note_crash(i)
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(timeout=30)
        self.killed.add(i)
        self.paused.discard(i)

    def restart(self, i):
        self._note_crash(i)
        p = self.procs[i]
        if p is None or p.poll() is not None:
            self._spawn(i)
        self.killed.discard(i)

    def pause(self, i):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGSTOP)
            self.paused.add(i)

    def resume(self, i):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
        self.paused.discard(i)

    def partition(self, fault):
        """Drops every packet between the pairs the fault cuts, in one table
        of this process's own (one partition at a time)."""
        self.heal_partition()
        rules = "".join(f"    ip saddr {ip_of(a)} ip daddr {ip_of(b)} drop\n"
                        for a, b in fault.blocked())
        script = (f"table inet {self.table} {{\n"
                  f"  chain out {{\n"
                  f"    type filter hook output priority 0; policy accept;\n"
                  f"{rules}  }}\n}}\n")
        self.table_exists = True
        r = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
        if r.returncode != 0:
            raise ClusterError(f"nft refused the partition: {r.stderr.strip()}")

    def heal_partition(self):
        if not self.table_exists:
            return
        r = subprocess.run(["nft", "delete", "table", "inet", self.table],
                           capture_output=True, text=True)
        if r.returncode != 0 and "No such file" not in r.stderr:
            raise ClusterError(f"nft could not delete table {self.table}: {r.stderr.strip()}")
        self.table_exists = False

    def heal_all(self):
        """No partition, no paused node, every node running."""
        self.heal_partition()
        for i in range(NODES):
            self.resume(i)
            self.restart(i)

    # ----------------------------------------------------------- the end

    def stop(self):
        """Heals the network, continues paused nodes, stops every kvd this
        object started (SIGTERM, then SIGKILL after 20 s), by pid."""
        try:
            self.heal_partition()
        except ClusterError as e:
            self.log(f"cluster: {e}")
        for i, p in enumerate(self.procs):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.terminate()
        for i, p in enumerate(self.procs):
            if p is None:
                continue
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.log(f"cluster: {node_name(i)} ignored SIGTERM for 20 s: SIGKILL")
                p.kill()
                p.wait(timeout=20)

    def log_tails(self, lines=15):
        out = []
        for i in range(NODES):
            try:
                with open(self.log_path(i), "rb") as f:
                    tail = f.read()[-16384:].decode(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- {node_name(i)} ({self.log_path(i)})")
            out.extend(tail)
        return "\n".join(out)
