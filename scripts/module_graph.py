#!/usr/bin/env python3
"""File-level import graph of src/ (grep-based) and its cycles.

Usage: python3 scripts/module_graph.py [src_dir]
Prints file counts and the largest files per folder, then every strongly connected
component of more than one file (an import cycle between files). An edge a -> b means
a.rs names a path (`use`, or an inline `crate::`/`super::` path) that resolves to b.rs.
"""
import os
import re
import sys
from collections import defaultdict

SRC = sys.argv[1] if len(sys.argv) > 1 else "src"


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


files = {}
for root, _, names in os.walk(SRC):
    for n in names:
        if n.endswith(".rs"):
            p = os.path.join(root, n)
            files[module_of(p)] = p
# Files pulled in with #[path] (tests next to code) belong to the module that includes them.
by_mod = {m: p for m, p in files.items()}


def resolve(path_parts):
    """Longest module prefix of path_parts that is a file."""
    for k in range(len(path_parts), 0, -1):
        m = tuple(path_parts[:k])
        if m in by_mod:
            return m
    return None


PATH = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"use\s+((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)
edges = defaultdict(set)
for m, p in files.items():
    text = open(p, encoding="utf-8").read()
    text = re.sub(r"//[^\n]*", "", text)
    is_mod_file = os.path.basename(p) in ("mod.rs", "lib.rs", "main.rs")
    here = list(m) if is_mod_file else list(m[:-1]) + [m[-1]]

    def absolute(s):
        parts = s.split("::")
        if parts[0] == "crate":
            base, rest = [], parts[1:]
        else:
            base = list(here)
            rest = parts
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    base = base[:-1]
                rest = rest[1:]
        return base + rest

    paths = PATH.findall(text)
    for prefix, group in USE_GROUP.findall(text):
        for item in re.split(r"[,\s]+", group):
            item = item.strip("{} ")
            if item and item != "self" and re.match(r"^[A-Za-z_]", item):
                paths.append(prefix + "::" + item.split("::")[0])
    for s in paths:
        t = resolve(absolute(s))
        if t is not None and t != m and files[t] != p:
            # a parent mod.rs naming its own children is declaration, not a dependency
            edges[m].add(t)

# Tarjan's SCC
index, low, on, stack, sccs = {}, {}, set(), [], []
counter = [0]
sys.setrecursionlimit(10000)


def strong(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in index:
            strong(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        sccs.append(comp)


for v in list(files):
    if v not in index:
        strong(v)

folders = defaultdict(list)
for m, p in files.items():
    folders[os.path.dirname(os.path.relpath(p, SRC)) or "."].append((sum(1 for _ in open(p)), os.path.relpath(p, SRC)))
print(f"{len(files)} files, {sum(l for f in folders.values() for l, _ in f)} lines")
for folder in sorted(folders):
    fs = sorted(folders[folder], reverse=True)
    top = ", ".join(f"{n} ({l})" for l, n in fs[:3])
    print(f"  {folder}/: {len(fs)} files; largest: {top}")
cycles = [sorted("/".join(c) or "lib" for c in comp) for comp in sccs if len(comp) > 1]
print(f"{len(cycles)} import cycles between files")
for c in sorted(cycles, key=len, reverse=True):
    print(f"  {len(c)} files: {' '.join(c)}")
