"""The workloads of kvcheck run and kvcheck nemesis: drive a cluster over
HTTP and record a history.

Python 3 standard library only (http.client, threading). N threads are
spread round-robin over the HTTP endpoints; each keeps one keep-alive
connection to its endpoint (reopened after an error). Events are written to
the history file as they happen (docs/design/KVCHECK.md); times are
time.monotonic_ns() (CLOCK_MONOTONIC); each invocation names the node it
was sent to. Every request carries ?consistency=LEVEL (default quorum),
except the final reads, which are at consistency=all.

counter: each increment is one `add` (value 1): a read-then-cas loop
  (GET, 404 = 0 at version 0; POST /cas with the read version and
  str(n + 1)). 200: ok. 409: read again and retry, at most --max-retries
  cas attempts, then fail. 503, another refusal or a refused connection:
  fail (not applied). 504 or another connection error on the cas: info, and
  the thread goes on under a new process id. The loop stops at the
  deadline: fail if no cas was in doubt. At the end, one final `read`.
register: each thread alternates at random between a read (GET) and a cas
  (expected: the last version the thread saw, value unique), one fresh key
  per run, each recorded as a register op.
set: each `add` is a PUT of a fresh key (element n is the key PREFIX-n,
  holding str(n)); the elements are grouped into sets of SET_SIZE, each a
  history key (PREFIX-s<set>). A `read` of a set is one batch of GETs of
  every element handed out in it so far; a batch with an error in any
  result is a failed read. At the end, every set is read at consistency=all.
"""

import http.client
import itertools
import json
import random
import sys
import threading
import time
import urllib.parse

TRANSIENT = (OSError, http.client.HTTPException)
SET_SIZE = 32          # elements per set: a read is one batch of at most this many GETs
SET_READ_SHARE = 0.15  # of a set thread's operations, the share that are reads
FINAL_ATTEMPTS = 10    # tries of each final read at consistency=all


class Endpoint:
    """One keep-alive connection to one HOST:PORT; `name` labels it in the
    history (the node's id, or HOST:PORT)."""

    def __init__(self, hostport, timeout, token, name=None):
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"'{hostport}' is not HOST:PORT")
        self.host, self.port, self.timeout = host, int(port), timeout
        self.name = name or hostport
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = "Bearer " + token
        self.conn = None

    def request(self, method, path, body=None):
        """(status, parsed JSON body or None). Raises on a connection error,
        after closing the connection (the next request opens a new one).
        ConnectionRefusedError means nothing was sent."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            self.conn.request(method, path, body=data, headers=self.headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except TRANSIENT:
            self.close()
            raise
        if resp.will_close:
            self.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return resp.status, parsed

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Recorder:
    """The history file, shared by the threads, plus the outcome counts."""

    def __init__(self, path, first_free_process):
        self.f = open(path, "w", encoding="utf-8")
        self.lock = threading.Lock()
        self.pids = itertools.count(first_free_process)
        self.counts = {"ok": 0, "fail": 0, "info": 0}

    def new_process(self):
        with self.lock:
            return next(self.pids)

    def event(self, process, type_, **fields):
        ev = {"process": process, "type": type_}
        ev.update(fields)
        ev["time"] = time.monotonic_ns()
        line = json.dumps(ev) + "\n"
        with self.lock:
            self.f.write(line)
            if type_ in self.counts:
                self.counts[type_] += 1

    def nemesis(self, f, **fields):
        """A nemesis event (process "nemesis", info); not counted as an op."""
        ev = {"process": "nemesis", "type": "info", "f": f}
        ev.update(fields)
        ev["time"] = time.monotonic_ns()
        with self.lock:
            self.f.write(json.dumps(ev) + "\n")
            self.f.flush()

    def close(self):
        self.f.close()


class Ctx:
    """What every workload thread shares: the recorder, when to stop, the
    consistency level of its requests."""

    def __init__(self, rec, deadline, consistency, max_retries):
        self.rec, self.deadline = rec, deadline
        self.consistency, self.max_retries = consistency, max_retries
        self.stop = threading.Event()

    def over(self):
        return self.stop.is_set() or time.monotonic() >= self.deadline

    def pause(self, seconds):
        """Sleeps, but wakes at once when told to stop."""
        self.stop.wait(seconds)


def _kv_path(key, cas=False, consistency=None):
    p = "/v1/kv/" + urllib.parse.quote(key, safe="")
    if cas:
        p += "/cas"
    if consistency:
        p += "?consistency=" + consistency
    return p


def _write_outcome(status):
    """A write's answer as ok, fail (refused: not applied) or info."""
    if status == 200:
        return "ok"
    if status == 503 or 400 <= status < 500:
        return "fail"
    return "info"          # 504 (unknown outcome), another 5xx


class _NoAnswer(Exception):
    """A read that returned nothing usable (nothing was changed)."""


# ------------------------------------------------------------------ counter

def _read_counter(ep, key, consistency):
    """(value, version) or raise _NoAnswer. 404 is (0, 0)."""
    status, body = ep.request("GET", _kv_path(key, consistency=consistency))
    if status == 404:
        return 0, 0
    if status == 200 and isinstance(body, dict):
        try:
            return int(body["value"]), int(body["version"])
        except (KeyError, TypeError, ValueError):
            pass
    raise _NoAnswer(status, body)


def _counter_thread(ep, key, ctx, process, tid):
    rec = ctx.rec
    while not ctx.over():
        rec.event(process, "invoke", f="add", key=key, value=1, node=ep.name)
        outcome = "fail"
        cas_tries = 0
        while not ctx.over() and cas_tries < ctx.max_retries:
            try:
                n, v = _read_counter(ep, key, ctx.consistency)
            except (_NoAnswer, *TRANSIENT):
                ctx.pause(0.05)           # a read changes nothing: read again
                continue
            cas_tries += 1
            try:
                status, body = ep.request("POST", _kv_path(key, True, ctx.consistency),
                                          {"expectedVersion": v, "newValue": str(n + 1)})
            except ConnectionRefusedError:
                ctx.pause(0.05)           # never sent: nothing applied
                break
            except TRANSIENT:
                outcome = "info"
                break
            if status == 200:
                outcome = "ok"
                break
            if status == 409:
                continue                  # someone else won: read again
            if status == 504 or (status >= 500 and status != 503):
                outcome = "info"
                break
            # 503 (not applied) or any other refusal: give up, nothing applied.
            ctx.pause(0.01)
            break
        rec.event(process, outcome, f="add", key=key)
        if outcome == "info":
            process = rec.new_process()


def _final_counter_read(endpoints, key, rec):
    """The final read at consistency=all, through the endpoints in turn,
    retried (each attempt recorded). The value, or None."""
    process = rec.new_process()
    for attempt in range(FINAL_ATTEMPTS):
        ep = endpoints[attempt % len(endpoints)]
        rec.event(process, "invoke", f="read", key=key, node=ep.name)
        try:
            n, v = _read_counter(ep, key, "all")
        except (_NoAnswer, *TRANSIENT):
            rec.event(process, "fail", f="read", key=key)
            time.sleep(0.5)
            continue
        rec.event(process, "ok", f="read", key=key, value=n if v else None)
        return n
    return None


# ----------------------------------------------------------------- register

def _register_thread(ep, key, ctx, process, tid):
    rec = ctx.rec
    rng = random.Random(tid)
    seen = 0          # the last version this process saw: its cas's expectation
    seq = 0
    while not ctx.over():
        if rng.random() < 0.5:
            rec.event(process, "invoke", f="read", key=key, node=ep.name)
            try:
                status, body = ep.request("GET", _kv_path(key, consistency=ctx.consistency))
            except TRANSIENT:
                rec.event(process, "fail", f="read", key=key)   # a read changes nothing
                ctx.pause(0.05)
                continue
            if status == 404:
                rec.event(process, "ok", f="read", key=key, value=None, version=None)
            elif status == 200 and isinstance(body, dict) and "version" in body:
                seen = body["version"]
                rec.event(process, "ok", f="read", key=key, value=body.get("value"),
                          version=seen)
            else:
                rec.event(process, "fail", f="read", key=key)
                ctx.pause(0.01)
        else:
            seq += 1
            value = f"t{tid}-p{process}-{seq}"
            rec.event(process, "invoke", f="cas", key=key, value=value, expected=seen,
                      node=ep.name)
            try:
                status, body = ep.request("POST", _kv_path(key, True, ctx.consistency),
                                          {"expectedVersion": seen, "newValue": value})
            except ConnectionRefusedError:
                status, body = 503, None                       # never sent
            except TRANSIENT:
                status, body = None, None
            if status == 200 and isinstance(body, dict) and "version" in body:
                seen = body["version"]
                rec.event(process, "ok", f="cas", key=key, version=seen)
            elif status == 409 and isinstance(body, dict) and isinstance(body.get("version"), int):
                seen = body["version"]
                rec.event(process, "fail", f="cas", key=key, version=seen)
            elif status is not None and _write_outcome(status) == "fail":
                rec.event(process, "fail", f="cas", key=key)   # refused: not applied
                ctx.pause(0.05)
            else:
                rec.event(process, "info", f="cas", key=key)   # unknown outcome
                process = rec.new_process()


# ---------------------------------------------------------------------- set

class SetLayout:
    """Element n (0, 1, ...) is the key PREFIX-n holding str(n); it belongs
    to set n // size, the history key PREFIX-s<set>. Elements are handed out
    in order, so a set's elements so far are a range."""

    def __init__(self, prefix, size=SET_SIZE):
        self.prefix, self.size = prefix, size
        self.lock = threading.Lock()
        self.count = 0

    def allocate(self):
        with self.lock:
            n = self.count
            self.count += 1
            return n

    def handed_out(self):
        with self.lock:
            return self.count

    def set_key(self, s):
        return f"{self.prefix}-s{s}"

    def element_key(self, n):
        return f"{self.prefix}-{n}"

    def elements(self, s, count):
        return range(s * self.size, min((s + 1) * self.size, count))

    def sets(self, count):
        return range((count + self.size - 1) // self.size)


def _read_set(ep, layout, s, consistency):
    """The elements of set s present now: one batch GET of every element
    handed out in it so far (counted after the caller recorded the
    invocation, so an element acknowledged before the read began is in
    it). None when the batch or any of its GETs failed."""
    els = list(layout.elements(s, layout.handed_out()))
    body = {"operations": [{"op": "GET", "key": layout.element_key(n)} for n in els]}
    status, resp = ep.request("POST", "/v1/kv/batch?consistency=" + consistency, body)
    results = resp.get("results") if status == 200 and isinstance(resp, dict) else None
    if not isinstance(results, list) or len(results) != len(els):
        return None
    found = []
    for n, r in zip(els, results):
        st = r.get("status") if isinstance(r, dict) else None
        if st == "OK":
            if r.get("value") == str(n):    # another value reads as absent
                found.append(n)
        elif st != "NOT_FOUND":
            return None
    return found


def _set_thread(ep, layout, ctx, process, tid):
    rec = ctx.rec
    rng = random.Random(f"set-{tid}")
    while not ctx.over():
        count = layout.handed_out()
        if count and rng.random() < SET_READ_SHARE:
            # The newest set, or the one before it.
            s = max(0, (count - 1) // layout.size - rng.randrange(2))
            key = layout.set_key(s)
            rec.event(process, "invoke", f="read", key=key, node=ep.name)
            try:
                found = _read_set(ep, layout, s, ctx.consistency)
            except TRANSIENT:
                found = None
            if found is None:
                rec.event(process, "fail", f="read", key=key)
                ctx.pause(0.05)
            else:
                rec.event(process, "ok", f="read", key=key, value=found)
            continue
        n = layout.allocate()
        key = layout.set_key(n // layout.size)
        rec.event(process, "invoke", f="add", key=key, value=n, node=ep.name)
        try:
            status, _ = ep.request("PUT", _kv_path(layout.element_key(n),
                                                   consistency=ctx.consistency),
                                   {"value": str(n)})
            outcome = _write_outcome(status)
        except ConnectionRefusedError:
            outcome = "fail"                      # never sent
        except TRANSIENT:
            outcome = "info"
        rec.event(process, outcome, f="add", key=key)
        if outcome == "info":
            process = rec.new_process()
        elif outcome == "fail":
            ctx.pause(0.05)


def _final_set_reads(endpoints, layout, rec):
    """Every set read once more at consistency=all, through the endpoints
    in turn, retried (each attempt recorded). The sets never read."""
    unread = []
    for s in layout.sets(layout.handed_out()):
        process, key = rec.new_process(), layout.set_key(s)
        for attempt in range(FINAL_ATTEMPTS):
            ep = endpoints[(s + attempt) % len(endpoints)]
            rec.event(process, "invoke", f="read", key=key, node=ep.name)
            try:
                found = _read_set(ep, layout, s, "all")
            except TRANSIENT:
                found = None
            if found is not None:
                rec.event(process, "ok", f="read", key=key, value=found)
                break
            rec.event(process, "fail", f="read", key=key)
            time.sleep(0.5)
        else:
            unread.append(s)
    return unread


# ----------------------------------------------------------------- workload

MODELS = ("counter", "register", "set")


class Workload:
    """The threads of one model over a list of endpoints, recording into
    one history file: start(), then finish() (stop and join, bounded),
    then final() (the final reads), then close()."""

    def __init__(self, model, hosts, out_path, threads, timeout=5.0, token=None,
                 consistency="quorum", max_retries=50, key=None, names=None,
                 transport="http"):
        if model not in MODELS:
            raise ValueError(f"unknown model '{model}'")
        if not hosts:
            raise ValueError("no endpoint to talk to")
        if transport not in ("http", "client"):
            raise ValueError(f"unknown transport '{transport}'")
        names = names or hosts
        self.model, self.hosts, self.names = model, hosts, names
        self.timeout, self.token, self.threads = timeout, token, threads
        self.transport = transport
        if transport == "client":
            # The C client handle (client-side routing) through the Python
            # binding: one handle per thread, onto every node.
            from .client_endpoint import ClientEndpoint
            ClientEndpoint(hosts, timeout, token)   # the binding loads, the syntax holds
        for h in hosts:
            Endpoint(h, timeout, token)            # validate the syntax up front
        self.key = key or f"kvcheck-{model}-{time.time_ns():x}-{random.getrandbits(32):08x}"
        self.layout = SetLayout(self.key) if model == "set" else None
        self.rec = Recorder(out_path, threads)
        self.ctx = Ctx(self.rec, 0.0, consistency, max_retries)
        self.endpoints, self.running = [], []

    def start(self, duration):
        """Starts the threads; each stops by itself after `duration` s."""
        self.ctx.deadline = time.monotonic() + duration
        for t in range(self.threads):
            ep = self._endpoint(t)
            self.endpoints.append(ep)
            if self.model == "set":
                target, targs = _set_thread, (ep, self.layout, self.ctx, t, t)
            else:
                body = _counter_thread if self.model == "counter" else _register_thread
                target, targs = body, (ep, self.key, self.ctx, t, t)
            th = threading.Thread(target=target, args=targs, daemon=True, name=f"kvcheck-{t}")
            self.running.append(th)
            th.start()

    def _endpoint(self, t):
        """Thread t's door: an HTTP connection to one node (round-robin), or
        a client handle onto them all."""
        if self.transport == "client":
            from .client_endpoint import ClientEndpoint
            return ClientEndpoint(self.hosts, self.timeout, self.token, f"client-{t}")
        i = t % len(self.hosts)
        return Endpoint(self.hosts[i], self.timeout, self.token, self.names[i])

    def join(self, seconds):
        """Waits (at most `seconds`) for the threads to stop by themselves."""
        end = time.monotonic() + seconds
        for th in self.running:
            th.join(max(0.0, end - time.monotonic()))

    def finish(self, grace):
        """Tells the threads to stop; each ends within its request's timeout
        (a counter increment within two). Returns the names of any still
        running after `grace` s."""
        self.ctx.stop.set()
        self.join(grace)
        return [th.name for th in self.running if th.is_alive()]

    def final(self):
        """The final reads at consistency=all: the counter's value (None if
        the read failed) or the sets never read (a list); None for the
        register, which has none."""
        if self.transport == "client":
            eps = [self._endpoint(self.threads)]
        else:
            eps = [Endpoint(h, self.timeout, self.token, n)
                   for h, n in zip(self.hosts, self.names)]
        try:
            if self.model == "counter":
                return _final_counter_read(eps, self.key, self.rec)
            if self.model == "set":
                return _final_set_reads(eps, self.layout, self.rec)
            return None
        finally:
            for ep in eps:
                ep.close()

    def close(self):
        for ep in self.endpoints:
            ep.close()
        self.rec.close()


def run(args, out=sys.stdout):
    """kvcheck run: the workload for args.duration; returns (history path,
    summary dict)."""
    token = None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    transport = "client" if getattr(args, "client", None) else "http"
    listed = args.client if transport == "client" else args.http
    hosts = [h.strip() for h in listed.split(",") if h.strip()]
    if not hosts:
        raise ValueError(f"--{transport} needs at least one HOST:PORT")
    w = Workload(args.model, hosts, args.out, args.threads, args.timeout, token,
                 args.consistency, args.max_retries, key=args.key, transport=transport)
    start = time.monotonic()
    w.start(args.duration)
    # Each loop checks the deadline; a request is bounded by the timeout.
    # A counter increment may make up to max_retries * 2 requests past it at
    # worst, so wait with a margin and then tell them to stop.
    w.join(args.duration + 4 * args.timeout)
    alive = w.finish(4 * args.timeout)
    elapsed = time.monotonic() - start
    counts = dict(w.rec.counts)
    final = w.final()
    w.close()
    summary = {"key": w.key, "ok": counts["ok"], "fail": counts["fail"], "info": counts["info"],
               "seconds": elapsed, "ops_per_s": (counts["ok"] + counts["fail"] + counts["info"])
               / elapsed if elapsed > 0 else 0.0}
    door = "the client handle onto" if transport == "client" else "HTTP on"
    out.write(f"kvcheck run: model {args.model}, key {w.key}, {args.threads} thread(s) through "
              f"{door} {len(hosts)} endpoint(s), consistency {args.consistency}, "
              f"{elapsed:.1f}s\n")
    out.write(f"  {counts['ok']} ok, {counts['fail']} fail, {counts['info']} info; "
              f"{summary['ops_per_s']:.1f} ops/s\n")
    if args.model == "counter":
        summary["final"] = final
        out.write(f"  final value (consistency=all): {final}, acknowledged increments: "
                  f"{counts['ok']}\n")
    elif args.model == "set":
        summary["unread_sets"] = final
        out.write(f"  final reads (consistency=all): {len(w.layout.sets(w.layout.count))} "
                  f"set(s), {len(final)} not read\n")
    if alive:
        out.write(f"  warning: {len(alive)} thread(s) still running at the end\n")
    return args.out, summary
