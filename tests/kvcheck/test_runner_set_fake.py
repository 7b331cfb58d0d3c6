"""kvcheck run --model set, and --consistency on every request, against an
in-process fake of the HTTP API (PUT, GET, CAS, batch GET; no kvd needed):
a correct store has no lost element, a store that drops acknowledged PUTs
has, and every workload request carries ?consistency=LEVEL (the final reads
consistency=all)."""

import io
import json
import os
import re
import shutil
import tempfile
import threading
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from support import history
from checker import cli, setfull

KEY_PATH = re.compile(r"^/v1/kv/([^/?]+)(/cas)?(?:\?(.*))?$")


class FakeStore:
    """One node's keys: key -> (value, version). The k-th PUT (from 1) is
    answered 200 but not stored when k is in `drop` (a lost acknowledged
    write), answered 503 and not stored when in `refuse`, stored but
    answered 504 when in `unknown`. Every request's query string is kept.
    (Fixed PUT numbers, not every k-th: a test then needs only a few PUTs,
    however slow the machine.)"""

    def __init__(self, drop=(), refuse=(), unknown=()):
        self.lock = threading.Lock()
        self.keys, self.queries, self.puts = {}, [], 0
        self.drop, self.refuse, self.unknown = set(drop), set(refuse), set(unknown)

    def handler(self):
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16
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

            def _body(self):
                return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

            def _route(self):
                path, _, query = self.path.partition("?")
                with store.lock:
                    store.queries.append((self.command, path, query))
                return path, urllib.parse.parse_qs(query)

            def do_GET(self):
                self._route()
                m = KEY_PATH.match(self.path)
                with store.lock:
                    cur = store.keys.get(urllib.parse.unquote(m.group(1)))
                if cur is None:
                    return self._send(404, {"error": {"code": "NOT_FOUND"}})
                self._send(200, {"value": cur[0], "version": cur[1]})

            def do_PUT(self):
                self._route()
                key = urllib.parse.unquote(KEY_PATH.match(self.path).group(1))
                body = self._body()
                with store.lock:
                    store.puts += 1
                    k = store.puts
                    if k in store.refuse:
                        return self._send(503, {"error": {"code": "UNAVAILABLE"}})
                    version = store.keys.get(key, (None, 0))[1] + 1
                    if k not in store.drop:
                        store.keys[key] = (body["value"], version)
                if k in store.unknown:
                    return self._send(504, {"error": {"code": "UNKNOWN_OUTCOME"}})
                self._send(200, {"version": version})

            def do_POST(self):
                path, _ = self._route()
                body = self._body()
                if path == "/v1/kv/batch":
                    results = []
                    with store.lock:
                        for op in body["operations"]:
                            cur = store.keys.get(op["key"])
                            results.append({"op": "GET", "key": op["key"], "status": "OK",
                                            "version": cur[1], "value": cur[0]} if cur else
                                           {"op": "GET", "key": op["key"],
                                            "status": "NOT_FOUND"})
                    return self._send(200, {"results": results})
                key = urllib.parse.unquote(KEY_PATH.match(self.path).group(1))
                with store.lock:
                    cur = store.keys.get(key, (None, 0))
                    if cur[1] != body["expectedVersion"]:
                        return self._send(409, {"error": {"code": "CONFLICT"},
                                                "version": cur[1]})
                    store.keys[key] = (body["newValue"], cur[1] + 1)
                self._send(200, {"version": cur[1] + 1})

        return Handler


class SetRunnerOnFake(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kvcheck-setfake-")
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

    def run_kvcheck(self, store, model, *extra, threads=4, duration=1.0):
        path = os.path.join(self.tmp, model + ".history")
        out = io.StringIO()
        status = cli.main(["run", "--model", model, "--http", self.serve(store),
                           "--threads", str(threads), "--duration", str(duration),
                           "--timeout", "2", "--out", path, *extra], out=out, err=out)
        return status, history.load(path), out.getvalue()

    def set_summary(self, ops):
        total = {}
        for key_ops in history.by_key(ops).values():
            for k, v in setfull.check_key(key_ops)["summary"].items():
                total[k] = total.get(k, 0) + v
        return total

    def test_set_on_a_correct_store_loses_nothing(self):
        store = FakeStore(refuse={2}, unknown={3})
        status, ops, text = self.run_kvcheck(store, "set")
        self.assertEqual(status, 0, text)
        self.assertEqual({o.f for o in ops}, {"add", "read"})
        self.assertEqual({o.outcome for o in ops if o.f == "add"}, {"ok", "fail", "info"}, text)
        s = self.set_summary(ops)
        self.assertEqual(s["lost"], 0, text)
        self.assertEqual(s["unexpected"], 0, text)
        self.assertGreater(s["stable"], 0, text)
        self.assertIn("0 not read", text)
        # Every invocation names its endpoint.
        self.assertTrue(all(o.node for o in ops))

    def test_set_on_a_store_that_drops_acknowledged_writes(self):
        status, ops, text = self.run_kvcheck(FakeStore(drop={2}), "set")
        self.assertEqual(status, 1, text)
        self.assertIn("lost:", text)
        self.assertGreater(self.set_summary(ops)["lost"], 0, text)

    def test_consistency_is_on_every_request(self):
        for model in ("set", "counter", "register"):
            with self.subTest(model=model):
                store = FakeStore()
                status, ops, text = self.run_kvcheck(store, model, "--consistency", "serial",
                                                     threads=2, duration=0.5)
                self.assertEqual(status, 0, text)
                levels = [urllib.parse.parse_qs(q).get("consistency") for _, _, q in
                          store.queries]
                finals = {"set": len(history.by_key(ops)), "counter": 1, "register": 0}[model]
                self.assertEqual(levels.count(["serial"]), len(levels) - finals, text)
                self.assertEqual(levels.count(["all"]), finals, text)
                self.assertGreater(len(levels), finals)

    def test_bad_consistency_is_usage(self):
        out = io.StringIO()
        rc = cli.main(["run", "--http", "127.0.0.1:1", "--consistency", "a&b=c", "--out",
                       os.path.join(self.tmp, "h")], out=out, err=out)
        self.assertEqual(rc, 2)


if __name__ == "__main__":
    unittest.main()
