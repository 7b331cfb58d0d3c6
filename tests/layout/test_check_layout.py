"""Unit tests of check_layout.py: it must fail on what it forbids."""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_layout  # noqa: E402


def tree(files):
    """A fake lib/ holding files ({relative path: text})."""
    d = tempfile.TemporaryDirectory()
    for rel, text in files.items():
        path = os.path.join(d.name, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return d


CLEAN = {
    "util/buf.h": "#include <stdint.h>\n",
    "format/frame.h": '#include "util/buf.h"\n',
    "net/server.c": '#include "format/frame.h"\n#include "net/server.h"\n',
    "net/server.h": "",
    "node/node.c": ('#include "net/server.h"\n'
                    "/* kv_put(db, ...) in a comment */\n"
                    'static const char *m = "kv_open: path is empty";\n'
                    "int kvi_node_put(void) { return kvi_embedded_put(); }\n"),
    "api/api.c": '#include "node/node.c"\nint kv_put(void) { return kvi_node_put(); }\n',
}


class CheckLayout(unittest.TestCase):
    def problems(self, files):
        with tree(files) as d:
            return check_layout.check(d)

    def test_clean_tree(self):
        self.assertEqual(self.problems(CLEAN), [])

    def test_upward_include(self):
        files = dict(CLEAN)
        files["util/metrics.h"] = '#include <stdint.h>\n#include "net/server.h"\n'
        p = self.problems(files)
        self.assertEqual(len(p), 1, p)
        self.assertIn("util/metrics.h:2:", p[0])
        self.assertIn("higher layer (net/)", p[0])

    def test_upward_include_one_step(self):
        files = dict(CLEAN)
        files["storage/expiry_filter.c"] = '#include "cluster/state.h"\n'
        p = self.problems(files)
        self.assertEqual(len(p), 1, p)
        self.assertIn("storage/ includes \"cluster/state.h\"", p[0])

    def test_kv_call_below_api(self):
        files = dict(CLEAN)
        files["net/http_routes.c"] = "int f(kv *db) {\n    return kv_put(db, 0);\n}\n"
        p = self.problems(files)
        self.assertEqual(len(p), 1, p)
        self.assertIn("net/http_routes.c:2:", p[0])
        self.assertIn("kv_put()", p[0])

    def test_kv_definition_below_api(self):
        files = dict(CLEAN)
        files["format/value.c"] = "void kv_value_free (kv_value *v) { }\n"
        p = self.problems(files)
        self.assertEqual(len(p), 1, p)
        self.assertIn("kv_value_free()", p[0])

    def test_file_outside_layers(self):
        files = dict(CLEAN)
        files["client.c"] = '#include "net/server.h"\n'
        files["node/x.c"] = '#include "client.h"\n'
        files["client.h"] = ""
        p = self.problems(files)
        self.assertTrue(any(x.startswith("client.c:1: not in a layer") for x in p), p)
        self.assertTrue(any(x.startswith("client.h:1: not in a layer") for x in p), p)
        self.assertTrue(any("node/x.c:1: includes \"client.h\"" in x for x in p), p)

    def test_strip_keeps_lines(self):
        src = 'a /* x\ny */ "kv_get(" \'"\' // kv_put(\nkv_del('
        out = check_layout.strip_comments_and_strings(src)
        self.assertEqual(out.count("\n"), src.count("\n"))
        self.assertEqual(check_layout.KV_CALL.findall(out), ["kv_del"])

    def test_command_fails(self):
        files = dict(CLEAN)
        files["util/log.c"] = '#include "api/api.c"\n'
        with tree(files) as d:
            r = subprocess.run([sys.executable, os.path.join(HERE, "check_layout.py"), d],
                               capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("util/log.c:1:", r.stdout)

    def test_command_passes(self):
        with tree(CLEAN) as d:
            r = subprocess.run([sys.executable, os.path.join(HERE, "check_layout.py"), d],
                               capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
