"""What Python 3.8 could not run in a probe: the probes run on each node's own, often old, python.

`ast.parse(..., feature_version=(3, 8))` rejects most newer grammar (match, except*,
parenthesized context managers) but lets some through, and it knows nothing of the library.
`problems` adds what a probe is likely to reach for: the newer grammar the parser accepts, and
the newer builtins, methods and modules.
"""

from __future__ import annotations

import ast

OLDEST = (3, 8)

#: Methods newer than 3.8, by attribute name.
NEWER_METHODS = {
    "removeprefix": "str.removeprefix (3.9)",
    "removesuffix": "str.removesuffix (3.9)",
    "is_relative_to": "PurePath.is_relative_to (3.9)",
    "with_stem": "PurePath.with_stem (3.9)",
    "bit_count": "int.bit_count (3.10)",
}
#: Modules newer than 3.8.
NEWER_MODULES = {
    "zoneinfo": "zoneinfo (3.9)",
    "graphlib": "graphlib (3.9)",
    "tomllib": "tomllib (3.11)",
}
#: Builtins newer than 3.8.
NEWER_BUILTINS = {"aiter": "aiter (3.10)", "anext": "anext (3.10)"}
#: Builtin types that can be subscripted at run time only from 3.9 on (PEP 585).
GENERIC_BUILTINS = frozenset({"list", "dict", "tuple", "set", "frozenset", "type"})


def problems(source: str) -> list[str]:
    """What in `source` Python 3.8 cannot run, each with its line; empty when it can."""
    try:
        tree = ast.parse(source, feature_version=OLDEST)
    except SyntaxError as exc:
        return [f"line {exc.lineno}: {exc.msg}"]
    annotations = {
        id(part)
        for node in ast.walk(tree)
        for annotation in _annotations(node)
        for part in ast.walk(annotation)
    }
    found = []
    for node in ast.walk(tree):
        found += [f"line {getattr(node, 'lineno', '?')}: {what}" for what in _newer(node)]
        if isinstance(node, ast.Subscript) and id(node) not in annotations:
            found += [f"line {node.lineno}: {what}" for what in _newer_subscript(node)]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found += [
                f"line {d.lineno}: a decorator that is not a dotted name or a call of one (3.9)"
                for d in node.decorator_list
                if not _dotted(d.func if isinstance(d, ast.Call) else d)
            ]
    return found


def _annotations(node: ast.AST) -> list[ast.expr]:
    """The annotations `node` carries (evaluated lazily, so PEP 585 generics are fine there)."""
    if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
        return [node.annotation]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
        return [node.returns]
    return []


def _newer(node: ast.AST) -> list[str]:
    """Newer-than-3.8 features `node` itself uses, apart from subscripts and decorators."""
    found = []
    if isinstance(node, ast.Attribute) and node.attr in NEWER_METHODS:
        found.append(NEWER_METHODS[node.attr])
    elif isinstance(node, ast.Name) and node.id in NEWER_BUILTINS:
        found.append(NEWER_BUILTINS[node.id])
    elif isinstance(node, ast.Import):
        found += [NEWER_MODULES[a.name] for a in node.names if a.name in NEWER_MODULES]
    elif isinstance(node, ast.ImportFrom) and node.module in NEWER_MODULES:
        found.append(NEWER_MODULES[node.module])
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "zip"
        and any(k.arg == "strict" for k in node.keywords)
    ):
        found.append("zip(strict=...) (3.10)")
    return found


def _newer_subscript(node: ast.Subscript) -> list[str]:
    """`list[int]` evaluated at run time (3.9), or a starred index `a[*b]` (3.11)."""
    found = []
    if isinstance(node.value, ast.Name) and node.value.id in GENERIC_BUILTINS:
        found.append(f"{node.value.id}[...] at run time (3.9)")
    index = node.slice
    if isinstance(index, ast.Starred) or (
        isinstance(index, ast.Tuple) and any(isinstance(e, ast.Starred) for e in index.elts)
    ):
        found.append("a starred index (3.11)")
    return found


def _dotted(node: ast.expr) -> bool:
    """Whether `node` is a name or a dotted name, as 3.8's decorator grammar requires."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)
