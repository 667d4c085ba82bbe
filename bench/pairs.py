#!/usr/bin/env python3
"""The files that changed between two releases of each package, as old/new pairs.

  pairs.py UNPACKED [--libraries] "name old new"...   # lines old<TAB>new<TAB>label

UNPACKED holds <name>-<version> folders (bench/packages.sh's unpack_wheels). A new file is
paired with the old file at its path, else with an old file whose path differs only in
versions and hashes (the nearest in size), as the agent pairs them; identical pairs are
left out. Files of 2 KiB or more on both sides (the smallest the agent sends a delta of);
with --libraries, shared libraries (`.so`, `.so.N`) of 1 MB or more. Largest first.
"""
import filecmp
import os
import re
import sys

# Runs of digits joined by dots, and hex words of six or more with a digit, become one '#'.
WORD = r'(?:[0-9]+|(?=[0-9a-f]*[0-9])[0-9a-f]{6,})'
VERSION = re.compile(r'(?<![A-Za-z0-9])' + WORD + r'(?:\.' + WORD + r')*(?![A-Za-z0-9])')


def key(rel):
    return VERSION.sub('#', rel)


def files(top, libraries):
    found = {}
    for d, _, names in os.walk(top):
        for n in names:
            if libraries and not re.search(r'\.so(\.|$)', n):
                continue
            path = os.path.join(d, n)
            found[os.path.relpath(path, top)] = path
    return found


def main():
    args = sys.argv[1:]
    libraries = '--libraries' in args
    args = [a for a in args if a != '--libraries']
    root, specs = args[0], args[1:]
    smallest = 1_000_000 if libraries else 2048
    pairs = []
    for spec in specs:
        name, old, new = spec.split()
        a, b = files(f"{root}/{name}-{old}", libraries), files(f"{root}/{name}-{new}", libraries)
        by_key = {}
        for rel in a:
            by_key.setdefault(key(rel), []).append(rel)
        for rel, path in b.items():
            size = os.path.getsize(path)
            if size < smallest:
                continue
            match = rel if rel in a else min(by_key.get(key(rel), []), default=None,
                                             key=lambda r: abs(os.path.getsize(a[r]) - size))
            if match is None or os.path.getsize(a[match]) < 2048 or filecmp.cmp(a[match], path, shallow=False):
                continue
            pairs.append((size, a[match], path, f"{name} {rel}"))
    for _, old, new, label in sorted(pairs, reverse=True):
        print(f"{old}\t{new}\t{label}")


if __name__ == '__main__':
    main()
