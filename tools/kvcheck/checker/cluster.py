"""Five kvd processes in the current network namespace, and the faults the
nemesis injects into them: nft rules on the loopback (partitions), kill -9
and restart, SIGSTOP and SIGCONT; and the topology changes: a node started
later with --seeds that joins, a node asked to leave (kvctl decommission)
and stopped once it left.

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

from .nemesis import ChangeRefused, node_name

NODES = 5
BINARY_PORT = 7400
HTTP_PORT = 8080
ENV_REEXEC = "KVCHECK_NETNS"
KVCTL_TIMEOUT_S = 60     # one kvctl decommission, at most (its requests: 10 s each)
STOP_TIMEOUT_S = 20      # SIGTERM, then SIGKILL


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
    (started afresh with the run, appended to across restarts). `initial`:
    the nodes started at the beginning, each with --peers naming them all
    (default: the five); any other is started by a join (ask()), with
    --seeds. `kvctl`: the kvctl binary a decommission runs."""

    def __init__(self, kvd, workdir, logdir, extra_args=(), log=lambda msg: None,
                 initial=None, kvctl=None):
        self.kvd, self.workdir, self.logdir = kvd, workdir, logdir
        self.extra_args, self.log = list(extra_args), log
        self.kvctl = kvctl
        self.procs = [None] * NODES
        self.paused = set()
        self.killed = set()          # nodes the nemesis killed, not yet restarted
        self.crashes = []            # (node, exit status) of nodes that exited by themselves
        self.table = f"kvcheck_{os.getpid()}"
        self.table_exists = False
        self.initial = list(range(NODES)) if initial is None else sorted(initial)
        self.absent = set(range(NODES)) - set(self.initial)   # to join, not started yet
        self.retired = set()         # left the cluster, and stopped
        self.seeds = {}              # a node that joined -> its --seeds
        self.peers = ",".join(self.listen(i) for i in self.initial)
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

    def members(self):
        """The nodes this run keeps running now: started (or to be
        restarted), not left."""
        return [i for i in range(NODES) if i not in self.absent and i not in self.retired]

    def _spawn(self, i):
        data = os.path.join(self.workdir, node_name(i))
        os.makedirs(data, exist_ok=True)
        # A node that joined keeps its --seeds across restarts (its store
        # then holds the topology record, which it comes back with).
        cluster = ["--seeds", self.seeds[i]] if i in self.seeds else ["--peers", self.peers]
        argv = [*self.prefix, self.kvd, "--data", data, "--listen", self.listen(i),
                "--http", self.http(i), "--node-id", node_name(i), *cluster,
                *self.extra_args]
        mode = "ab" if self.procs[i] is not None else "wb"    # a restart appends
        with open(self.log_path(i), mode) as log:
            # A session of its own: a Ctrl-C on the terminal reaches kvcheck
            # alone, which then stops the nodes itself.
            self.procs[i] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, timeout):
        for i in self.initial:
            self._spawn(i)
        self.wait_ready(timeout)

    def exited(self):
        """The nodes that exited although nothing killed them."""
        return [i for i, p in enumerate(self.procs)
                if p is not None and p.poll() is not None and i not in self.retired]

    def wait_ready(self, timeout, hints=False):
        """Waits (at most `timeout` s) until every member node (members())
        answers GET /v1/cluster with "complete": true and every member up
        (a member `left` aside), and, with `hints`, holds no hint. Raises
        ClusterError naming the nodes that are not, or a node that
        exited."""
        end = time.monotonic() + timeout
        while True:
            dead = self.exited()
            if dead:
                raise ClusterError(", ".join(f"{node_name(i)} exited with "
                                             f"{self.procs[i].returncode}" for i in dead))
            waiting = [node_name(i) + why for i in self.members()
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
        down = [m.get("nodeId") for m in c.get("members", [])
                if m.get("status") != "up" and m.get("state") != "left"]
        if down:
            return f" sees {down} not up"
        pending = (c.get("failures") or {}).get("hintsPending", 0)
        if hints and pending:
            return f" holds {pending} hints"
        return ""

    # ------------------------------------------------------------ faults

    def _member(self, i, what):
        if i in self.absent or i in self.retired:
            self.log(f"cluster: {node_name(i)} is no member now: no {what}")
            return False
        return True

    def _note_crash(self, i):
        p = self.procs[i]
        if (p is not None and p.poll() is not None and i not in self.killed
                and i not in self.retired):
            self.crashes.append((i, p.returncode))
            self.log(f"cluster: {node_name(i)} exited by itself with status {p.returncode}")
            self.killed.add(i)       # noted once; restarted like a killed node

    def kill(self, i):
        if not self._member(i, "kill"):
            return
        self._note_crash(i)
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(timeout=30)
        self.killed.add(i)
        self.paused.discard(i)

    def restart(self, i):
        if not self._member(i, "restart"):
            return
        self._note_crash(i)
        p = self.procs[i]
        if p is None or p.poll() is not None:
            self._spawn(i)
        self.killed.discard(i)

    def pause(self, i):
        if not self._member(i, "pause"):
            return
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
        """No partition, no paused node, every member node running."""
        self.heal_partition()
        for i in self.members():
            self.resume(i)
            self.restart(i)

    # ------------------------------------------------- topology changes

    def settle(self, timeout):
        """Before a change: waits (at most `timeout` s) until every member
        is complete and up. None, or what was not."""
        try:
            self.wait_ready(timeout)
            return None
        except ClusterError as e:
            return str(e)

    def ask(self, change):
        """join: starts change.node with --seeds of change.via's address
        (no --peers) on its empty data directory, with the flags of the
        others. decommission: kvctl --endpoints <via> decommission --node
        <node>, bounded; raises ChangeRefused when kvctl fails."""
        i = change.node
        if change.kind == "join":
            if i in self.absent:
                self.seeds[i] = self.listen(change.via)
                self.absent.discard(i)
                self._spawn(i)
                self.log(f"cluster: started {node_name(i)} with --seeds {self.seeds[i]}")
            return
        if not self.kvctl:
            raise ChangeRefused("no kvctl (--kvctl)")
        argv = [self.kvctl, "--endpoints", self.listen(change.via), "--timeout", "10000",
                "decommission", "--node", node_name(i)]
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=KVCTL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ChangeRefused(f"kvctl decommission did not end within {KVCTL_TIMEOUT_S}s") \
                from None
        except OSError as e:
            raise ChangeRefused(f"kvctl: {e}") from None
        said = " ".join((r.stdout + " " + r.stderr).split())
        if r.returncode != 0:
            raise ChangeRefused(f"kvctl decommission exited with {r.returncode}: {said}")
        self.log(f"cluster: kvctl decommission --node {node_name(i)}: {said}")

    def view(self, change):
        """GET /v1/cluster of change.via, or of another member when it does
        not answer (never of the node that changes); None if none does."""
        order = [change.via] + [i for i in self.members() if i != change.via]
        for i in order:
            if i == change.node or i in self.absent or i in self.retired:
                continue
            v = _get_json(self.http(i), "/v1/cluster")
            if v is not None:
                return v
        return None

    def exit_status(self, i):
        """The node's exit status, or None while it runs (or never ran)."""
        p = self.procs[i]
        return None if p is None else p.poll()

    def retire(self, i):
        """A node that left: stopped (SIGTERM, SIGKILL after a while) and
        no member any more (no fault, heal or wait counts it)."""
        self.retired.add(i)
        self.paused.discard(i)
        self.killed.discard(i)
        p = self.procs[i]
        if p is None:
            return
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.terminate()
            try:
                p.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.log(f"cluster: {node_name(i)} ignored SIGTERM for {STOP_TIMEOUT_S} s: "
                         f"SIGKILL")
                p.kill()
                p.wait(timeout=STOP_TIMEOUT_S)
            self.log(f"cluster: {node_name(i)} left: stopped (status {p.returncode})")
        else:
            self.log(f"cluster: {node_name(i)} left; it had exited with status "
                     f"{p.returncode}")

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
