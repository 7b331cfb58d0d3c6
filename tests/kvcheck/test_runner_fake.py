"""kvcheck run against an in-process fake of the HTTP API (no kvd needed):
what each answer is recorded as, and that the checks see a correct store as
correct and a lossy CAS as lossy."""

import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from support import history
from checker import cli, counter

KEY_PATH = re.compile(r"^/v1/kv/([^/?]+)(/cas)?(\?.*)?$")


class FakeStore:
    """One node's keys: (value, version). `lossy`: the CAS compares, then
    writes later outside the lock (issue 11 in miniature). `unknown_every`:
    every k-th CAS is applied but answered 504; `unavailable_every`: every
    k-th CAS is refused with 503 and not applied."""

    def __init__(self, lossy=False, unknown_every=0, unavailable_every=0):
        self.lock = threading.Lock()
        self.keys = {}
        self.cas_count = 0
        self.lossy, self.unknown_every, self.unavailable_every = (
            lossy, unknown_every, unavailable_every)

    def handler(self):
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16              # one write per answer (flushed after it)
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                m = KEY_PATH.match(self.path)
                key = urllib.parse.unquote(m.group(1))
                with store.lock:
                    cur = store.keys.get(key)
                if cur is None:
                    self._send(404, {"error": {"code": "NOT_FOUND"}})
                else:
                    self._send(200, {"value": cur[0], "version": cur[1]})

            def do_POST(self):
                m = KEY_PATH.match(self.path)
                key = urllib.parse.unquote(m.group(1))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with store.lock:
                    store.cas_count += 1
                    k = store.cas_count
                    if store.unavailable_every and k % store.unavailable_every == 0:
                        return self._send(503, {"error": {"code": "UNAVAILABLE"}})
                    cur = store.keys.get(key, (None, 0))
                    if cur[1] != body["expectedVersion"]:
                        return self._send(409, {"error": {"code": "CONFLICT"},
                                                "version": cur[1]})
                    if not store.lossy:
                        store.keys[key] = (body["newValue"], cur[1] + 1)
                if store.lossy:
                    time.sleep(0.002)  # the window two coordinators share
                    with store.lock:   # too late: another CAS may have passed
                        store.keys[key] = (body["newValue"],
                                           store.keys.get(key, (None, 0))[1] + 1)
                if store.unknown_every and k % store.unknown_every == 0:
                    return self._send(504, {"error": {"code": "UNKNOWN_OUTCOME"}})
                self._send(200, {"version": cur[1] + 1})

        return Handler


class RunnerOnFake(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kvcheck-fake-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def serve(self, store):
        server = ThreadingHTTPServer(("127.0.0.1", 0), store.handler())
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    def run_kvcheck(self, store, model, threads=4, duration=1.0):
        path = os.path.join(self.tmp, model + ".history")
        out = io.StringIO()
        status = cli.main(["run", "--model", model, "--http", self.serve(store),
                           "--threads", str(threads), "--duration", str(duration),
                           "--timeout", "2", "--out", path], out=out, err=out)
        return status, history.load(path), out.getvalue()

    def test_counter_on_a_correct_store_has_no_anomaly(self):
        status, ops, text = self.run_kvcheck(FakeStore(), "counter")
        self.assertEqual(status, 0, text)
        s = counter.check_key(ops)["summary"]
        self.assertGreater(s["acknowledged"], 0, text)
        self.assertEqual(s["final"], s["acknowledged"], text)
        self.assertEqual([o.f for o in ops].count("read"), 1)

    def test_counter_unknown_and_unavailable_answers(self):
        store = FakeStore(unknown_every=7, unavailable_every=11)
        status, ops, text = self.run_kvcheck(store, "counter")
        self.assertEqual(status, 0, text)
        adds = [o for o in ops if o.f == "add"]
        outcomes = {o.outcome for o in adds}
        self.assertEqual(outcomes, {"ok", "fail", "info"}, text)
        # After an info the thread goes on as a new process: one op per process
        # is open at a time, so no process has an add after its info.
        for o in adds:
            if o.outcome == "info":
                self.assertFalse([p for p in adds if p.process == o.process
                                  and p.call > o.call], text)
        s = counter.check_key(ops)["summary"]
        self.assertEqual(s["final"], s["acknowledged"] + s["unknown"], text)

    def test_counter_on_a_lossy_cas_reports_lost_increments(self):
        status, ops, text = self.run_kvcheck(FakeStore(lossy=True), "counter", threads=8)
        self.assertEqual(status, 1, text)
        self.assertIn("lost-increments", text)

    def test_register_on_a_correct_store_is_linearizable(self):
        status, ops, text = self.run_kvcheck(FakeStore(unknown_every=13), "register",
                                             threads=3, duration=0.5)
        self.assertEqual(status, 0, text)
        self.assertEqual({o.f for o in ops}, {"read", "cas"})
        self.assertEqual({o.outcome for o in ops}, {"ok", "fail", "info"}, text)
        for o in ops:
            if o.f == "cas" and o.outcome == "fail":
                self.assertIsInstance(o.out_version, int)   # the conflict's version

    def test_register_on_a_lossy_cas_is_not_linearizable(self):
        status, ops, text = self.run_kvcheck(FakeStore(lossy=True), "register",
                                             threads=3, duration=0.5)
        self.assertEqual(status, 1, text)

    def test_usage_errors(self):
        out = io.StringIO()
        self.assertEqual(cli.main(["run", "--http", "nope", "--out",
                                   os.path.join(self.tmp, "h")], out=out, err=out), 2)
        self.assertEqual(cli.main(["run", "--http", "127.0.0.1:1", "--threads", "0", "--out",
                                   os.path.join(self.tmp, "h")], out=out, err=out), 2)


if __name__ == "__main__":
    unittest.main()
