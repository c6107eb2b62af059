#!/usr/bin/env python3
"""Checks the crate's module structure: no import circle at any level of the module tree.

Every `crate::...` and `super::...` path in the library's sources (comments and `mod tests`
blocks aside) is an edge from the module that names it to the module it names. An edge between
two modules counts at the level of their lowest common ancestor: `a::x -> b::y` is an edge
`a -> b` among the children of the crate root. Edges between a module and its own ancestor or
descendant are the module tree itself and do not count. The siblings of every folder must then
form a graph without circles. A glob import of the parent (`use super::*;`) hides which siblings
a module uses, so it is refused outside test modules.

Also prints, for the crate root's children, the edges that run back up the layers listed in
LAYERS (lowest first), and fails if there is more than ALLOWED_UPWARD of them.

    python3 scripts/check-imports.py [SRC_DIR [--no-layers]]

(`crates/cli/src/bin/diaspora-ctl --no-layers` checks the command-line tool's modules.)
"""
import os
import re
import sys

# The crate root's modules, lowest layer first; a module may use modules of its own layer or
# below. (README: "Layout".)
LAYERS = [
    ["error", "types", "json", "options", "margo", "data_view", "signal"],
    ["metadata", "descriptor", "thread_pool", "future"],
    ["event", "components"],
    ["backend", "plugin"],
    ["argobots", "mercury"],
    ["drivers"],
    ["driver"],
    ["topic"],
    ["producer", "consumer"],
    ["mpi", "hdf5"],
]
ALLOWED_UPWARD = 1


def modules(root):
    mods = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            parts = os.path.relpath(path, root)[:-3].split(os.sep)
            if parts[0] == "bin":
                continue
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            mods["::".join(parts)] = path
    return mods


def strip(src):
    # Test modules (inline, or in a file of their own) do not count.
    src = re.split(r"#\[cfg\(test\)\]\s*(?:#\[path[^\]]*\]\s*)?mod tests", src)[0]
    return "\n".join(
        line for line in src.split("\n") if not line.lstrip().startswith("//")
    )


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "src"
    use_layers = "--no-layers" not in sys.argv
    mods = modules(root)
    test_files = {m for m, p in mods.items() if p.endswith("_tests.rs") or "/tests/" in p}

    def resolve(path):
        parts = path.split("::")
        for i in range(len(parts), -1, -1):
            m = "::".join(parts[:i])
            if m in mods:
                return m
        return ""

    problems = []
    edges = set()
    for m, path in mods.items():
        if m in test_files:
            continue
        src = strip(open(path, encoding="utf-8").read())
        if re.search(r"^use\s+super::\*\s*;", src, re.M):
            problems.append(f"{path}: `use super::*;` hides which modules it uses")
        parent = m.split("::")[:-1]
        for kind, target in paths(src):
            base = [] if kind == "crate" else parent
            t = resolve("::".join(base + target.split("::")))
            if t != m:
                edges.add((m, t))

    def ancestors(m):
        parts = m.split("::") if m else []
        return ["::".join(parts[:i]) for i in range(len(parts))]

    level_edges = {}
    for a, b in edges:
        if b in ancestors(a) or a in ancestors(b) or a == b:
            continue
        pa, pb = a.split("::"), b.split("::")
        k = 0
        while k < min(len(pa), len(pb)) and pa[k] == pb[k]:
            k += 1
        lca = "::".join(pa[:k])
        ca, cb = "::".join(pa[: k + 1]), "::".join(pb[: k + 1])
        level_edges.setdefault(lca, set()).add((ca, cb, f"{a} -> {b}"))

    for lca, es in sorted(level_edges.items()):
        graph = {}
        why = {}
        for x, y, w in es:
            graph.setdefault(x, set()).add(y)
            why.setdefault((x, y), w)
        for cycle in cycles(graph):
            shown = " -> ".join(cycle + [cycle[0]])
            examples = "; ".join(
                why[(cycle[i], cycle[(i + 1) % len(cycle)])] for i in range(len(cycle))
            )
            problems.append(f"import circle in {lca or 'the crate root'}: {shown} ({examples})")

    layer = {m: i for i, ms in enumerate(LAYERS) for m in ms}
    upward = []
    for a, b in sorted(edges) if use_layers else []:
        ta, tb = a.split("::")[0], b.split("::")[0]
        if ta == tb or not ta or not tb:
            continue
        if ta not in layer or tb not in layer:
            problems.append(f"module {ta if ta not in layer else tb} has no layer in LAYERS")
            continue
        if layer[tb] > layer[ta]:
            upward.append(f"{a} -> {b}")
    for u in upward:
        print(f"check-imports: import running back up the layers: {u}")
    if len(upward) > ALLOWED_UPWARD:
        problems.append(f"{len(upward)} imports run back up the layers (at most {ALLOWED_UPWARD})")
    roots = [m for m in edges if m[1] == "" and m[0] != ""]
    for a, _ in sorted(roots):
        problems.append(f"{mods[a]}: reaches a type through the crate root (`crate::Type`)")
    for p in sorted(set(problems)):
        print(f"check-imports: {p}")
    if problems:
        sys.exit(1)
    print(f"check-imports: {len(mods)} modules, no import circle, {len(upward)} upward import(s)")


def paths(src):
    """Every `crate::a::b` and `super::a::b` path of `src`, with braced groups expanded
    (`use super::{a::X, b};` names `super::a::X` and `super::b`)."""
    found = []
    for m in re.finditer(r"\b(crate|super)::((?:\w+::)*)(\{|\w+)", src):
        kind, prefix, last = m.group(1), m.group(2), m.group(3)
        if last != "{":
            found.append((kind, prefix + last))
            continue
        # The braced group, up to its matching brace.
        depth, i = 1, m.end()
        while i < len(src) and depth:
            depth += {"{": 1, "}": -1}.get(src[i], 0)
            i += 1
        for item in split_group(src[m.end() : i - 1]):
            found.append((kind, prefix + item))
    return found


def split_group(text):
    """The paths of a use group's contents, nested groups expanded."""
    out, depth, start = [], 0, 0
    parts = []
    for i, c in enumerate(text):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    for p in (p.strip() for p in parts):
        if not p or p in ("self", "*"):
            continue
        p = re.sub(r"\s+as\s+\w+$", "", p)
        if "{" in p:
            head, _, rest = p.partition("{")
            for inner in split_group(rest.rsplit("}", 1)[0]):
                out.append(head + inner)
        else:
            out.append(re.sub(r"\s+", "", p).split("::self")[0])
    return out


def cycles(graph):
    """Strongly connected components of more than one node, each as one cycle through it."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
            if len(comp) > 1:
                out.append(one_cycle(graph, set(comp)))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def one_cycle(graph, comp):
    start = min(comp)
    # Breadth-first search back to the start, inside the component.
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path))
            if w in comp and w not in prev:
                prev[w] = v
                queue.append(w)
    return sorted(comp)


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    main()
