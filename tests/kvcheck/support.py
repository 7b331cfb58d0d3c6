"""Shared by the kvcheck tests: the checker on the path, and a small history
builder whose events take increasing times in the order they are written."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tools", "kvcheck"))

from checker import history  # noqa: E402


class Builder:
    def __init__(self, key="x"):
        self.key, self.lines, self.time = key, [], 0

    def _event(self, process, type_, **fields):
        self.time += 10
        ev = {"process": process, "type": type_, "time": self.time}
        ev.update({k: v for k, v in fields.items() if v is not None or k == "value"})
        self.lines.append(json.dumps(ev))
        return self

    def invoke(self, process, f, value=None, expected=None, key=None):
        return self._event(process, "invoke", f=f, key=key or self.key, value=value,
                           expected=expected)

    def ok(self, process, version=None, value=None):
        return self._event(process, "ok", version=version, value=value)

    def fail(self, process, version=None):
        return self._event(process, "fail", version=version, value=None)

    def info(self, process):
        return self._event(process, "info", value=None)

    def ops(self):
        return history.pair_events(history.parse_events(self.lines))

    def text(self):
        return "\n".join(self.lines) + "\n"
