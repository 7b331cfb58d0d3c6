#!/usr/bin/env python3
"""Checks that lib/ is laid out by layer (docs/design/LAYOUT.md).

Each file under lib/ belongs to the layer named by its first directory:

    util < format < storage < net < cluster < node < client < api

and the rules are:

1. includes point down: a file may #include "..." a header of its own
   layer or of a lower one, never of a higher one;
2. every .c and .h file lives in a layer directory (none at lib/'s root);
3. only api/ calls or defines the public kv_* functions: outside api/, no
   identifier kv_[a-z0-9_]+ followed by '(' outside comments and string
   literals (the layers below use their kvi_* equivalents).

Usage: check_layout.py [LIB_DIR]  (default: ../../lib from this file).
Prints one line per violation and exits 1 if there is any, else 0.
Python 3 standard library only.
"""
import os
import re
import sys

LAYERS = ["util", "format", "storage", "net", "cluster", "node", "client", "api"]
RANK = {name: i for i, name in enumerate(LAYERS)}

# kv_* names that may be used outside api/ (none today). Each entry needs a
# reason in docs/design/LAYOUT.md.
KV_ALLOWLIST = set()

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
KV_CALL = re.compile(r'\bkv_[a-z0-9_]+(?=\s*\()')


def strip_comments_and_strings(text):
    """The text with comments, string and character literals blanked out
    (newlines kept, so line numbers still match)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + c)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def layer_of(rel):
    """The layer of a path relative to lib/, or None."""
    top = rel.split("/", 1)[0]
    return top if "/" in rel and top in RANK else None


def check(lib):
    """Violations in the tree at lib, as sorted 'path:line: message' strings."""
    problems = []
    for root, dirs, files in os.walk(lib):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, lib).replace(os.sep, "/")
            layer = layer_of(rel)
            if layer is None:
                problems.append(f"{rel}:1: not in a layer directory ({', '.join(LAYERS)})")
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for m in INCLUDE.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                target = m.group(1)
                tlayer = layer_of(target)
                if tlayer is None:
                    if os.path.exists(os.path.join(lib, target)):
                        problems.append(f"{rel}:{line}: includes \"{target}\", "
                                        "which is not in a layer directory")
                    continue  # not a lib/ header (a system or generated one)
                if RANK[tlayer] > RANK[layer]:
                    problems.append(f"{rel}:{line}: {layer}/ includes \"{target}\" of a "
                                    f"higher layer ({tlayer}/)")
            if layer == "api":
                continue
            code = strip_comments_and_strings(text)
            for m in KV_CALL.finditer(code):
                if m.group(0) in KV_ALLOWLIST:
                    continue
                line = code.count("\n", 0, m.start()) + 1
                problems.append(f"{rel}:{line}: {layer}/ calls or defines {m.group(0)}(); "
                                "only api/ may (use its kvi_* equivalent)")
    return sorted(problems)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    lib = argv[1] if len(argv) > 1 else os.path.join(here, "..", "..", "lib")
    if not os.path.isdir(lib):
        print(f"check_layout: {lib} is not a directory", file=sys.stderr)
        return 2
    problems = check(lib)
    for p in problems:
        print(p)
    if problems:
        print(f"check_layout: {len(problems)} violation(s) of the layering "
              "(docs/design/LAYOUT.md)", file=sys.stderr)
        return 1
    print(f"check_layout: {lib} is laid out by layer: {' < '.join(LAYERS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
