"""Packaging: `pip install --no-build-isolation --no-index` of this directory
works offline (into a --target directory), and the installed package and
the example run. Skipped for an interpreter without pip, setuptools and
wheel (the Debian packages python3-pip, python3-setuptools, python3-wheel)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import support
from support import libkv

HAVE_TOOLS = all(importlib.util.find_spec(m) for m in ("pip", "setuptools", "wheel"))


def env_for(pythonpath: str) -> dict:
    e = dict(os.environ)
    e["LIBKV_LIBRARY"] = os.path.abspath(libkv.library_path())
    e["PYTHONPATH"] = pythonpath
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    e["PIP_NO_INDEX"] = "1"
    return e


class Install(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="libkv-install-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    @unittest.skipUnless(HAVE_TOOLS, "pip, setuptools or wheel missing for this python")
    def test_pip_install_offline(self) -> None:
        # pip builds in the source directory: build a copy, not the checkout.
        src = os.path.join(self.tmp, "src")
        shutil.copytree(support.PACKAGE_ROOT, src,
                        ignore=shutil.ignore_patterns("__pycache__", "tests", "build",
                                                      "*.egg-info"))
        target = os.path.join(self.tmp, "site")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation",
                            "--no-index", "--disable-pip-version-check", "--quiet",
                            "--target", target, src],
                           env=env_for(""), capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(os.path.exists(os.path.join(target, "libkv", "py.typed")))
        code = ("import libkv, sys; assert libkv.__file__.startswith(sys.argv[1]), libkv.__file__;"
                "db = libkv.open(sys.argv[2], sync='none'); db.put('k', b'v');"
                "print(db.get('k'), libkv.__version__); db.close()")
        r = subprocess.run([sys.executable, "-c", code, target, os.path.join(self.tmp, "db")],
                           cwd=self.tmp, env=env_for(target), capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["b'v'", "0.1.0"])

    def test_example(self) -> None:
        example = os.path.join(support.PACKAGE_ROOT, "examples", "quickstart.py")
        r = subprocess.run([sys.executable, example, self.tmp], env=env_for(""),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cas lost the race", r.stdout)
        self.assertTrue(r.stdout.endswith("done\n"), r.stdout)


if __name__ == "__main__":
    unittest.main()
