"""libkv from Python in one minute: an embedded store, then a node hosted in
this process and a client talking to it over the network.

    python3 bindings/python/examples/quickstart.py [DIR]
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import libkv  # noqa: E402  (from this checkout, or installed)

base = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="libkv-demo-")

# 1. An embedded store: a directory in this process, like SQLite or LMDB.
with libkv.open(os.path.join(base, "embedded.kv")) as db:
    db.put("user:1", b"ada", ttl=3600)           # str keys are UTF-8
    value = db.get("user:1")                     # None when absent
    print("get:", value, "version", value.version, "expires", value.expiry)
    try:
        db.cas("user:1", value.version - 1, b"stale")
    except libkv.ConflictError as e:
        print("cas lost the race; current version is", e.version)
    print("cas:", db.cas("user:1", value.version, b"grace"))
    print("batch:", db.batch([("put", "a", b"1"), ("get", "a"), ("delete", "b")]))

# 2. A node in this process (port 0: any free port) and a client of it.
with libkv.start_node(os.path.join(base, "node"), "n1", listen="127.0.0.1:0") as node, \
        libkv.connect(node.address, request_timeout=2.0) as client:
    client.put(b"greeting", b"hello", consistency="all")
    print("node sees:", node.get(b"greeting"))
    try:
        client.put(b"k", b"v")
    except libkv.RetryableError:                 # unavailable, timed out: not applied
        print("retry later")
    except libkv.UnknownOutcomeError:            # may have applied: read first
        print("check before retrying")
if len(sys.argv) == 1:
    shutil.rmtree(base)
print("done")
