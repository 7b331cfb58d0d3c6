"""The ctypes mirror against include/kv/*.h: every option struct's size and
field offsets as a C compiler lays them out, and every status code, enum
value and option version. Skipped when the headers or a compiler are
missing (an installed binding without the source tree)."""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import support  # noqa: F401  (sys.path)
from libkv import _native as n

INCLUDE = os.path.join(support.REPO, "include")
HEADERS = os.path.join(INCLUDE, "kv")

STRUCTS = {
    "kv_open_options": (n.OpenOptions, "KV_OPEN_OPTIONS_VERSION"),
    "kv_write_options": (n.WriteOptions, "KV_WRITE_OPTIONS_VERSION"),
    "kv_read_options": (n.ReadOptions, "KV_READ_OPTIONS_VERSION"),
    "kv_node_options": (n.NodeOptions, "KV_NODE_OPTIONS_VERSION"),
    "kv_client_options": (n.ClientOptions, "KV_CLIENT_OPTIONS_VERSION"),
}


def header_text() -> str:
    text = []
    for name in sorted(os.listdir(HEADERS)):
        with open(os.path.join(HEADERS, name)) as f:
            text.append(f.read())
    return "".join(text)


@unittest.skipUnless(os.path.isdir(HEADERS), "no include/kv here")
class HeaderConstants(unittest.TestCase):
    def setUp(self) -> None:
        self.h = header_text()

    def test_status_codes(self) -> None:
        codes = dict(re.findall(r"#define (KV_E\w+) \((-\d+)\)", self.h))
        self.assertGreater(len(codes), 10)
        for name, value in codes.items():
            self.assertEqual(getattr(n, name, None), int(value), name)
        self.assertIn("#define KV_OK 0", self.h)

    def test_enums(self) -> None:
        tables = {"KV_CONSISTENCY_": n.CONSISTENCY, "KV_SYNC_": n.SYNC, "KV_POLICY_": n.POLICY}
        for prefix, table in tables.items():
            found = dict(re.findall(rf"\b{prefix}(\w+) = (\d+)", self.h))
            self.assertTrue(found, prefix)
            # Every level of the header is known by its name, with its value
            # (a new one, such as SERIAL, must be added to _native).
            self.assertEqual({k.lower(): int(v) for k, v in found.items()}, table, prefix)
        batch = dict(re.findall(r"\bKV_BATCH_(PUT|GET|DELETE) = (\d+)", self.h))
        self.assertEqual({k: int(v) for k, v in batch.items()},
                         {"PUT": n.KV_BATCH_PUT, "GET": n.KV_BATCH_GET,
                          "DELETE": n.KV_BATCH_DELETE})
        logs = dict(re.findall(r"\bKV_LOG_(\w+) = (\d+)", self.h))
        self.assertEqual({k: int(v) for k, v in logs.items()},
                         {"ERROR": n.KV_LOG_ERROR, "WARN": n.KV_LOG_WARN,
                          "INFO": n.KV_LOG_INFO, "DEBUG": n.KV_LOG_DEBUG})

    def test_option_versions_not_ahead(self) -> None:
        for _, (_, macro) in STRUCTS.items():
            m = re.search(rf"#define {macro} (\d+)", self.h)
            assert m is not None, macro
            # The binding may lag (fields are only appended), never lead.
            self.assertLessEqual(getattr(n, macro), int(m.group(1)), macro)

    def test_limits(self) -> None:
        for name in ("KV_DEFAULT_MAX_KEY_SIZE", "KV_MAX_KEY_SIZE_LIMIT",
                     "KV_DEFAULT_MAX_VALUE_SIZE", "KV_MAX_VALUE_SIZE_LIMIT", "KV_BATCH_MAX_OPS"):
            m = re.search(rf"#define {name} \(?([0-9u *]+)\)?\n", self.h)
            assert m is not None, name
            self.assertEqual(eval(m.group(1).replace("u", "")), getattr(n, name), name)


CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


@unittest.skipUnless(os.path.isdir(HEADERS) and CC, "no include/kv or no C compiler")
class StructLayout(unittest.TestCase):
    def test_sizes_and_offsets(self) -> None:
        h = header_text()
        lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <kv/kv.h>",
                 "int main(void) {"]
        for cname, (cls, _) in STRUCTS.items():
            lines.append(f'printf("{cname} size %zu\\n", sizeof({cname}));')
            for field, _ in cls._fields_:
                lines.append(f'printf("{cname} {field} %zu\\n", offsetof({cname}, {field}));')
        lines += ["return 0;", "}"]
        with tempfile.TemporaryDirectory() as d:
            src, exe = os.path.join(d, "layout.c"), os.path.join(d, "layout")
            with open(src, "w") as f:
                f.write("\n".join(lines))
            subprocess.run([CC, "-std=c11", "-I", INCLUDE, src, "-o", exe], check=True)
            out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        got = {}
        for line in out.splitlines():
            s, f, v = line.split()
            got[(s, f)] = int(v)
        for cname, (cls, macro) in STRUCTS.items():
            for field, _ in cls._fields_:
                self.assertEqual(getattr(cls, field).offset, got[(cname, field)],
                                 f"{cname}.{field}")
            header_version = int(re.search(rf"#define {macro} (\d+)", h).group(1))
            if header_version == getattr(n, macro):
                self.assertEqual(ctypes.sizeof(cls), got[(cname, "size")], cname)


if __name__ == "__main__":
    unittest.main()
