"""kvcheck through the client handle: the same workloads as over HTTP, run
through libkv's C client (kv_client_open, client-side routing) by way of
the Python binding (bindings/python, ctypes; libkv.so found as the binding
finds it: $LIBKV_LIBRARY, the build tree, the system).

ClientEndpoint has Endpoint's interface (request(method, path, body) ->
(status, parsed body)), so the workloads do not know which door they use:
it translates the few requests they make into library calls and the
library's exceptions into the HTTP statuses the API would answer:
  GET    /v1/kv/{key}?consistency=L        get      200 {value, version} | 404
  PUT    /v1/kv/{key}?consistency=L        put      200 {version}
  POST   /v1/kv/{key}/cas?consistency=L    cas      200 {version} | 409 {version}
  POST   /v1/kv/batch?consistency=L        batch of GETs  200 {results: [...]}
  UnavailableError 503, TimedOutError and UnknownOutcomeError 504, other
  library errors 500; a closed handle raises OSError (a connection error).
"""

import os
import sys
import urllib.parse

_HERE = os.path.dirname(os.path.realpath(__file__))
_BINDING = os.path.normpath(os.path.join(_HERE, "..", "..", "..", "bindings", "python"))


def load_binding():
    """The libkv package, or raises ImportError saying what is missing."""
    if _BINDING not in sys.path and os.path.isdir(_BINDING):
        sys.path.insert(0, _BINDING)
    import libkv  # noqa: E402  (the binding's own ImportError says how to find libkv.so)
    return libkv


class ClientEndpoint:
    """One client handle onto the cluster, opened on first use; `name`
    labels it in the history."""

    def __init__(self, endpoints, timeout, token, name=None):
        if not endpoints or any(":" not in e for e in endpoints):
            raise ValueError(f"'{','.join(endpoints)}' is not HOST:PORT[,HOST:PORT...]")
        self.endpoints, self.timeout, self.token = list(endpoints), timeout, token
        self.name = name or "client"
        self.libkv = load_binding()
        self.db = None

    def _store(self):
        if self.db is None:
            try:
                self.db = self.libkv.connect(self.endpoints, request_timeout=self.timeout,
                                             connect_timeout=min(1.0, self.timeout),
                                             auth_token=self.token)
            except self.libkv.Error as e:
                raise ConnectionRefusedError(str(e)) from e
        return self.db

    def request(self, method, path, body=None):
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        level = query.get("consistency", [None])[0]
        parts = url.path.split("/")          # '', 'v1', 'kv', key, ['cas']
        if len(parts) < 4 or parts[1:3] != ["v1", "kv"]:
            raise ValueError(f"kvcheck's client door does not know {method} {path}")
        key = urllib.parse.unquote(parts[3])
        db = self._store()
        lk = self.libkv
        try:
            if method == "GET":
                v = db.get(key, consistency=level)
                if v is None:
                    return 404, None
                return 200, {"value": bytes(v).decode("utf-8", "replace"), "version": v.version}
            if method == "PUT":
                return 200, {"version": db.put(key, body["value"], consistency=level)}
            if method == "POST" and len(parts) == 5 and parts[4] == "cas":
                try:
                    ver = db.cas(key, body["expectedVersion"], body["newValue"],
                                 consistency=level)
                except lk.ConflictError as e:
                    return 409, {"version": e.version}
                return 200, {"version": ver}
            if method == "POST" and key == "batch":
                return 200, {"results": self._batch(db, body, level)}
        except lk.UnavailableError:
            return 503, None
        except (lk.TimedOutError, lk.UnknownOutcomeError):
            return 504, None
        except lk.ClosedError as e:
            raise ConnectionResetError(str(e)) from e
        except lk.Error:
            return 500, None
        raise ValueError(f"kvcheck's client door does not know {method} {path}")

    def _batch(self, db, body, level):
        ops = body["operations"]
        if any(op.get("op") != "GET" for op in ops):
            raise ValueError("kvcheck's client door batches GETs only")
        results = db.batch([("get", op["key"]) for op in ops], consistency=level)
        out = []
        for r in results:
            if r is None:
                out.append({"status": "NOT_FOUND"})
            elif isinstance(r, self.libkv.Error):
                out.append({"status": "ERROR"})
            else:
                out.append({"status": "OK", "value": bytes(r).decode("utf-8", "replace"),
                            "version": r.version})
        return out

    def close(self):
        if self.db is not None:
            self.db.close()
            self.db = None
