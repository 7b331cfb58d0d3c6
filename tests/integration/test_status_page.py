"""The status page (GET /ui) in a real browser, on a real 3-node cluster.

Starts three kvd on 127.0.0.1 (a cluster of three, N=3) and one kvd alone
with a client token, then:
- HTTP: GET /v1/status lists the three members, each up with its
  description; GET / and /ui answer the page as text/html with a
  Content-Security-Policy that allows no other origin; POST /ui is 405;
  with tokens, the page is open but /v1/status needs the token.
- the page in headless Chromium (--dump-dom prints the DOM after the
  page's scripts ran; --virtual-time-budget lets its 2 s polls happen in
  virtual time): the three members are listed and up; after 200 PUT and
  200 GET sent to node 1, node 1's request count on the page has grown by
  at least 400 (a cumulative count, so no timing window); a screenshot is
  kept (STATUS_PAGE_SCREENSHOT, in the build directory); node 3 stopped
  (SIGTERM, by pid), the page shows it down (a fresh browser each attempt,
  bounded: 30 attempts, 90 s); on the node with a token, the page asks for
  it.

Chromium is required: the test fails without it (scripts/install-deps.sh
installs Debian's chromium). Python standard library only. Every process
started here is stopped by its pid in tearDown. Run by hand:
  KVD=build/tools/kvd/kvd python3 tests/integration/test_status_page.py -v
"""

import html.parser
import json
import os
import shutil
import sys
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvnodes  # noqa: E402

KVD = os.environ.get("KVD")
SCREENSHOT = os.environ.get("STATUS_PAGE_SCREENSHOT")
NODES = 3
TOKEN = "status-page-test-token"


def chromium_path():
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def http(method, url, body=None, headers=None, timeout=10):
    """(status, headers, body bytes) of one request; HTTP errors included."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class PageReader(html.parser.HTMLParser):
    """What the page shows: per table id, per data-node, the row's data-up
    and its cells by data-figure (their text); and the body's data-*."""

    def __init__(self):
        super().__init__()
        self.tables = {}
        self.body = {}
        self._table = None
        self._row = None
        self._figure = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "table" and a.get("id"):
            self._table = self.tables.setdefault(a["id"], {})
        elif tag == "tr" and self._table is not None and "data-node" in a:
            self._row = {"up": a.get("data-up"), "figures": {}}
            self._table[a["data-node"]] = self._row
        elif tag == "td" and self._row is not None and "data-figure" in a:
            self._figure = a["data-figure"]
            self._row["figures"][self._figure] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._figure = None
        elif tag == "tr":
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._figure is not None:
            self._row["figures"][self._figure] += data


@unittest.skipUnless(KVD, "KVD is not set: the path of the kvd binary (ctest sets it)")
class StatusPage(unittest.TestCase):
    def setUp(self):
        self.chromium = chromium_path()
        # Not a skip: CI must have the browser (scripts/install-deps.sh).
        self.assertIsNotNone(self.chromium, "chromium is not installed: the status page test "
                             "needs headless Chromium (apt-get install chromium)")
        self.tmp = tempfile.mkdtemp(prefix="kv-status-page-")
        self.procs = []
        self.browsers = 0
        self.addCleanup(self._stop_all)
        for attempt in range(3):  # a port taken between the pick and the listen
            if self._start_cluster():
                return
            self._stop_all(remove=False)
        self.fail("the cluster of three never became complete: " + self._logs())

    def _start(self, name, args):
        data = os.path.join(self.tmp, name)
        shutil.rmtree(data, ignore_errors=True)
        os.mkdir(data)
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        self.addCleanup(log.close)
        p = subprocess.Popen([KVD, "--data", data, "--node-id", name] + args,
                             stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def _start_cluster(self):
        ports = kvnodes.free_ports(2 * NODES + 2)
        listen = [f"127.0.0.1:{p}" for p in ports[:NODES]]
        self.http = [f"127.0.0.1:{p}" for p in ports[NODES:2 * NODES]]
        self.cluster = [self._start(f"n{i + 1}", ["--listen", listen[i], "--http", self.http[i],
                                                  "--peers", ",".join(listen)])
                        for i in range(NODES)]
        token_file = os.path.join(self.tmp, "tokens")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        self.secured_http = f"127.0.0.1:{ports[-1]}"
        self.secured = self._start("secured", ["--listen", f"127.0.0.1:{ports[-2]}", "--http",
                                               self.secured_http,
                                               "--client-token-file", token_file])
        deadline = time.monotonic() + 60
        pending = list(range(NODES))
        while pending and time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                return False
            pending = [i for i in pending if not self._complete(self.http[i])]
            if pending:
                time.sleep(0.2)
        while time.monotonic() < deadline and not self._answers(self.secured_http):
            if self.secured.poll() is not None:
                return False
            time.sleep(0.2)
        return not pending and self._answers(self.secured_http)

    @staticmethod
    def _complete(addr):
        try:
            status, _, body = http("GET", f"http://{addr}/v1/cluster", timeout=2)
            return status == 200 and json.loads(body).get("complete") is True
        except (OSError, ValueError):
            return False

    @staticmethod
    def _answers(addr):
        try:
            return http("GET", f"http://{addr}/v1/health", timeout=2)[0] == 200
        except OSError:
            return False

    def _logs(self):
        text = []
        for name in [f"n{i + 1}" for i in range(NODES)] + ["secured"]:
            try:
                with open(os.path.join(self.tmp, name + ".log"), "rb") as f:
                    text.append(f"--- {name}\n" + f.read()[-2000:].decode(errors="replace"))
            except OSError:
                pass
        return "\n".join(text)

    def _stop_all(self, remove=True):
        """Stops the kvd processes this test started, by their pid. At the
        end of a test (remove), each must have stopped cleanly: exit status
        0 after SIGTERM (under ASan, a leak or an error makes it another)."""
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        unclean = []
        for p in self.procs:
            try:
                code = p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                code = p.wait(timeout=20)
            if code != 0:
                unclean.append(f"{p.args[p.args.index('--node-id') + 1]} exited with {code}")
        self.procs = []
        logs = self._logs() if unclean and remove else ""
        if remove:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if unclean and remove:
            raise AssertionError("kvd did not stop cleanly: " + "; ".join(unclean) + "\n" + logs)

    # ------------------------------------------------------------ browser
    def _browser(self, url, *extra):
        """Runs a fresh headless Chromium (a profile of its own) on url for
        5 s of virtual time (the page polls three times); its stdout."""
        self.browsers += 1
        profile = os.path.join(self.tmp, f"chromium-{self.browsers}")
        args = [self.chromium, "--headless", "--disable-gpu", "--no-sandbox",
                "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-sync",
                f"--user-data-dir={profile}", "--virtual-time-budget=5000", *extra, url]
        try:
            r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=90)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        if r.returncode != 0:
            self.fail(f"chromium exited with {r.returncode}: "
                      f"{r.stderr.decode(errors='replace')[-2000:]}")
        return r.stdout.decode(errors="replace")

    def _page(self, addr):
        """The page as node addr's browser shows it (a PageReader)."""
        page = PageReader()
        page.feed(self._browser(f"http://{addr}/ui", "--dump-dom"))
        return page

    def _requests_of(self, page, node):
        text = page.tables.get("traffic", {}).get(node, {}).get("figures", {}).get("requests")
        self.assertIsNotNone(text, f"the page shows no request count for {node}")
        self.assertTrue(text.isdigit(), f"{node}'s request count is {text!r}")
        return int(text)

    # -------------------------------------------------------------- tests
    def test_http_endpoints(self):
        base = f"http://{self.http[0]}"
        status, headers, body = http("GET", base + "/v1/status")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Content-Type"], "application/json")
        doc = json.loads(body)
        self.assertEqual(doc["nodeId"], "n1")
        self.assertEqual(doc["timeoutMs"], 1000)
        self.assertEqual(sorted(n["nodeId"] for n in doc["nodes"]), ["n1", "n2", "n3"])
        for n in doc["nodes"]:
            self.assertIs(n["up"], True, n)
            self.assertIsNone(n["error"])
            self.assertIs(n["self"], n["nodeId"] == "n1")
            self.assertEqual(n["description"]["nodeId"], n["nodeId"])
            for key in ("members", "storage", "failures", "latency", "hotKeys"):
                self.assertIn(key, n["description"])
            self.assertIn("memtableBytes", n["description"]["storage"])
            self.assertIn("httpAddress", n)
        page = None
        for path in ("/", "/ui"):
            status, headers, body = http("GET", base + path)
            self.assertEqual(status, 200, path)
            self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8", path)
            csp = headers["Content-Security-Policy"] or ""
            self.assertIn("default-src 'none'", csp)
            self.assertIn("connect-src 'self'", csp)
            self.assertTrue(body.startswith(b"<!DOCTYPE html>"), path)
            # No resource from anywhere else: no URL with a scheme and host.
            self.assertNotIn(b"http://", body)
            self.assertNotIn(b"https://", body)
            if page is not None:
                self.assertEqual(body, page, "/ and /ui answer the same page")
            page = body
        status, headers, _ = http("POST", base + "/ui", body=b"")
        self.assertEqual(status, 405)
        self.assertEqual(headers["Allow"], "GET")
        self.assertEqual(http("POST", base + "/v1/status", body=b"")[0], 405)
        # With tokens: the page is open, its data is not.
        sec = f"http://{self.secured_http}"
        self.assertEqual(http("GET", sec + "/ui")[0], 200)
        self.assertEqual(http("GET", sec + "/v1/status")[0], 401)
        status, _, body = http("GET", sec + "/v1/status",
                               headers={"Authorization": "Bearer " + TOKEN})
        self.assertEqual(status, 200, body)
        self.assertEqual([n["nodeId"] for n in json.loads(body)["nodes"]], ["secured"])

    def test_page_in_browser(self):
        page = self._page(self.http[0])
        self.assertEqual(page.body.get("data-state"), "ok", page.body)
        self.assertGreaterEqual(int(page.body.get("data-polls", "0")), 1)
        ring = page.tables.get("ring", {})
        self.assertEqual(sorted(ring), ["n1", "n2", "n3"], "the members listed")
        for node, row in ring.items():
            self.assertEqual(row["up"], "true", f"{node} should show up: {row}")
        before = self._requests_of(page, "n1")

        base = f"http://{self.http[0]}"
        for i in range(200):
            body = json.dumps({"value": f"v{i}"}).encode()
            self.assertEqual(http("PUT", f"{base}/v1/kv/page-{i}", body=body)[0], 200)
            self.assertEqual(http("GET", f"{base}/v1/kv/page-{i}")[0], 200)

        page = self._page(self.http[0])
        after = self._requests_of(page, "n1")
        self.assertGreaterEqual(after - before, 400,
                                f"node 1's request count went from {before} to {after}")
        if SCREENSHOT:
            self._browser(f"http://{self.http[0]}/ui", f"--screenshot={SCREENSHOT}",
                          "--window-size=1280,1000", "--hide-scrollbars")
            with open(SCREENSHOT, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", "the screenshot is a PNG")

        n3 = self.cluster[2]
        n3.terminate()
        self.assertEqual(n3.wait(timeout=30), 0, "n3 did not stop cleanly: " + self._logs())
        shown = None
        deadline = time.monotonic() + 90
        for _ in range(30):
            if time.monotonic() > deadline:
                break
            page = self._page(self.http[0])
            shown = page.tables.get("ring", {}).get("n3")
            if shown and shown["up"] == "false":
                break
            time.sleep(1)
        self.assertIsNotNone(shown, "the page no longer lists n3 after it stopped")
        self.assertEqual(shown["up"], "false",
                         f"n3 was stopped but the page still shows it up: {shown}")
        self.assertIn("DOWN", shown["figures"].get("up", ""))
        self.assertEqual(page.tables["ring"]["n1"]["up"], "true")
        self.assertEqual(page.tables["ring"]["n2"]["up"], "true")

    def test_page_asks_for_token(self):
        page = self._page(self.secured_http)
        self.assertEqual(page.body.get("data-state"), "unauthorized", page.body)
        self.assertEqual(page.tables.get("ring", {}), {}, "no data without the token")


if __name__ == "__main__":
    unittest.main()
