"""kvcheck run: drive a running cluster over HTTP and record a history.

Python 3 standard library only (http.client, threading). N threads are
spread round-robin over the HTTP endpoints; each keeps one keep-alive
connection to its endpoint (reopened after an error). Events are written to
the history file as they happen (docs/design/KVCHECK.md); times are
time.monotonic_ns() (CLOCK_MONOTONIC).

counter: each increment is one `add` (value 1): a read-then-cas loop
  (GET ?consistency=quorum, 404 = 0 at version 0; POST /cas with the read
  version and str(n + 1)). 200: ok. 409: read again and retry, at most
  --max-retries cas attempts, then fail. 503: fail (not applied). 504 or a
  connection error on the cas: info, and the thread goes on under a new
  process id. The loop stops at the deadline: fail if no cas was in doubt.
  After all threads stop, one final `read` at consistency=all.
register: each thread alternates at random between a read (GET quorum) and
  a cas (expected: the last version the thread saw, value unique), one
  fresh key per run, each recorded as a register op.
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


class Endpoint:
    """One keep-alive connection to one HOST:PORT."""

    def __init__(self, hostport, timeout, token):
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"'{hostport}' is not HOST:PORT")
        self.host, self.port, self.timeout = host, int(port), timeout
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = "Bearer " + token
        self.conn = None

    def request(self, method, path, body=None):
        """(status, parsed JSON body or None). Raises on a connection error,
        after closing the connection (the next request opens a new one)."""
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

    def close(self):
        self.f.close()


def _kv_path(key, cas=False, consistency=None):
    p = "/v1/kv/" + urllib.parse.quote(key, safe="")
    if cas:
        p += "/cas"
    if consistency:
        p += "?consistency=" + consistency
    return p


def _read_counter(ep, key, consistency="quorum"):
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


class _NoAnswer(Exception):
    """A read that returned nothing usable (nothing was changed)."""


def _counter_thread(ep, key, rec, process, deadline, max_retries, stop):
    while time.monotonic() < deadline and not stop.is_set():
        rec.event(process, "invoke", f="add", key=key, value=1)
        outcome = "fail"
        cas_tries = 0
        while time.monotonic() < deadline and cas_tries < max_retries:
            try:
                n, v = _read_counter(ep, key)
            except (_NoAnswer, *TRANSIENT):
                time.sleep(0.01)          # a read changes nothing: read again
                continue
            cas_tries += 1
            try:
                status, body = ep.request("POST", _kv_path(key, cas=True),
                                          {"expectedVersion": v, "newValue": str(n + 1)})
            except TRANSIENT:
                outcome = "info"
                break
            if status == 200:
                outcome = "ok"
                break
            if status == 409:
                continue                  # someone else won: read again
            if status == 504:
                outcome = "info"
                break
            # 503 (not applied) or any other refusal: give up, nothing applied.
            time.sleep(0.01)
            break
        rec.event(process, outcome, f="add", key=key)
        if outcome == "info":
            process = rec.new_process()


def _final_counter_read(ep, key, rec, process, attempts=10):
    """The final read at consistency=all, retried (each attempt recorded)."""
    for _ in range(attempts):
        rec.event(process, "invoke", f="read", key=key)
        try:
            n, v = _read_counter(ep, key, consistency="all")
        except (_NoAnswer, *TRANSIENT):
            rec.event(process, "fail", f="read", key=key)
            time.sleep(0.2)
            continue
        rec.event(process, "ok", f="read", key=key, value=n if v else None)
        return n
    return None


def _register_thread(ep, key, rec, process, deadline, stop, tid):
    rng = random.Random(tid)
    seen = 0          # the last version this process saw: its cas's expectation
    seq = 0
    while time.monotonic() < deadline and not stop.is_set():
        if rng.random() < 0.5:
            rec.event(process, "invoke", f="read", key=key)
            try:
                status, body = ep.request("GET", _kv_path(key, consistency="quorum"))
            except TRANSIENT:
                rec.event(process, "fail", f="read", key=key)   # a read changes nothing
                continue
            if status == 404:
                rec.event(process, "ok", f="read", key=key, value=None, version=None)
            elif status == 200 and isinstance(body, dict) and "version" in body:
                seen = body["version"]
                rec.event(process, "ok", f="read", key=key, value=body.get("value"),
                          version=seen)
            else:
                rec.event(process, "fail", f="read", key=key)
        else:
            seq += 1
            value = f"t{tid}-p{process}-{seq}"
            rec.event(process, "invoke", f="cas", key=key, value=value, expected=seen)
            try:
                status, body = ep.request("POST", _kv_path(key, cas=True),
                                          {"expectedVersion": seen, "newValue": value})
            except TRANSIENT:
                status, body = None, None
            if status == 200 and isinstance(body, dict) and "version" in body:
                seen = body["version"]
                rec.event(process, "ok", f="cas", key=key, version=seen)
            elif status == 409 and isinstance(body, dict) and isinstance(body.get("version"), int):
                seen = body["version"]
                rec.event(process, "fail", f="cas", key=key, version=seen)
            elif status is not None and status != 504 and (status < 500 or status == 503):
                rec.event(process, "fail", f="cas", key=key)   # refused: not applied
                time.sleep(0.01)
            else:
                rec.event(process, "info", f="cas", key=key)   # unknown outcome
                process = rec.new_process()


def run(args, out=sys.stdout):
    """Run the workload; returns (history path, summary dict)."""
    token = None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    hosts = [h.strip() for h in args.http.split(",") if h.strip()]
    if not hosts:
        raise ValueError("--http needs at least one HOST:PORT")
    for h in hosts:
        Endpoint(h, args.timeout, token)      # validate the syntax up front
    key = args.key or f"kvcheck-{args.model}-{time.time_ns():x}-{random.getrandbits(32):08x}"
    rec = Recorder(args.out, args.threads)
    stop = threading.Event()
    start = time.monotonic()
    deadline = start + args.duration
    threads = []
    endpoints = []
    for t in range(args.threads):
        ep = Endpoint(hosts[t % len(hosts)], args.timeout, token)
        endpoints.append(ep)
        if args.model == "counter":
            target, targs = _counter_thread, (ep, key, rec, t, deadline, args.max_retries, stop)
        else:
            target, targs = _register_thread, (ep, key, rec, t, deadline, stop, t)
        th = threading.Thread(target=target, args=targs, daemon=True, name=f"kvcheck-{t}")
        threads.append(th)
        th.start()
    # Each loop checks the deadline; a request is bounded by the timeout.
    # A counter increment may make up to max_retries * 2 requests past it at
    # worst, so join with a margin and then tell them to stop.
    for th in threads:
        th.join(max(0.0, deadline - time.monotonic()) + 4 * args.timeout)
    stop.set()
    for th in threads:
        th.join(4 * args.timeout)
    elapsed = time.monotonic() - start
    counts = dict(rec.counts)
    final = None
    if args.model == "counter":
        ep = Endpoint(hosts[0], args.timeout, token)
        final = _final_counter_read(ep, key, rec, rec.new_process())
        ep.close()
    for ep in endpoints:
        ep.close()
    rec.close()
    summary = {"key": key, "ok": counts["ok"], "fail": counts["fail"], "info": counts["info"],
               "seconds": elapsed, "ops_per_s": (counts["ok"] + counts["fail"] + counts["info"])
               / elapsed if elapsed > 0 else 0.0}
    out.write(f"kvcheck run: model {args.model}, key {key}, {args.threads} thread(s) on "
              f"{len(hosts)} endpoint(s), {elapsed:.1f}s\n")
    out.write(f"  {counts['ok']} ok, {counts['fail']} fail, {counts['info']} info; "
              f"{summary['ops_per_s']:.1f} ops/s\n")
    if args.model == "counter":
        summary["final"] = final
        out.write(f"  final value (consistency=all): {final}, acknowledged increments: "
                  f"{counts['ok']}\n")
    alive = [th.name for th in threads if th.is_alive()]
    if alive:
        out.write(f"  warning: {len(alive)} thread(s) still running at the end\n")
    return args.out, summary
