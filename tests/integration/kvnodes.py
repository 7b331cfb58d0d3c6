"""Helpers the Python integration tests share: free ports, and waiting
(bounded) for a cluster of kvd to be whole. Standard library only."""
import http.client
import json
import signal
import socket
import subprocess
import sys
import time


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (closed again before use;
    other tests may run at once, so no fixed range)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def get_json(host, port, path, timeout=10):
    """(status, parsed body) of GET path; the body None when empty."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def wait_cluster_ready(procs, http_addrs, timeout):
    """Waits, at most timeout seconds, until every node (HTTP (host, port)
    in http_addrs) answers GET /v1/cluster complete, with all of them as
    members and none down. Exits the test, saying why, when a kvd of procs
    exited or the time ran out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for p in procs:
            if p.poll() is not None:
                sys.exit(f"a kvd exited with {p.returncode}")
        ready = 0
        for host, port in http_addrs:
            try:
                status, c = get_json(host, port, "/v1/cluster", timeout=5)
                if (status == 200 and c.get("complete")
                        and len(c.get("members", [])) == len(http_addrs)
                        and c["failures"]["membersDown"] == 0):
                    ready += 1
            except (OSError, ValueError, KeyError, http.client.HTTPException):
                pass
        if ready == len(http_addrs):
            return
        time.sleep(0.5)
    sys.exit(f"the cluster was not ready after {timeout} s")


def stop_all(procs):
    """SIGTERM to every kvd of procs still running (only those: they are
    the test's own), then waits for each, 30 s at most, and kills one that
    did not stop."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
