"""Building the snapshot of Manim's API: the code that runs in the builder process.

`watcher.apisnapshot` starts a fresh trusted interpreter (`python -I`, a scrubbed
environment, a timeout; no scene code runs in it) that runs `child_main` here: Manim is
imported, and for every name `from manim import *` brings its kind and, for a callable,
the keyword arguments it accepts; for a class the effective set, following `**kwargs` up
the MRO the way Manim's `__init__`s pass them on (`class_keywords`). The JSON is written
atomically to the cache file, which `watcher.apisnapshot` then verifies and reads.

Pure on import: Manim is imported only by `build`, in the builder process.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import os
import signal
import sys
import tempfile
import textwrap
import types
from pathlib import Path
from typing import Any

FORMAT = 1  # bump when the shape changes: older files are then made again
KINDS = frozenset({"class", "function", "constant", "module"})
# Standard modules (and NumPy) whose `from X import *` a scene may add to Manim's: their names are
# recorded too, so that such a scene can still be checked. Any other star import turns the check off.
STAR_MODULES = (
    "math",
    "cmath",
    "random",
    "itertools",
    "functools",
    "operator",
    "typing",
    "numpy",
    "colorsys",
    "fractions",
    "decimal",
    "statistics",
    "string",
    "collections",
    "dataclasses",
    "enum",
    "copy",
)


def build() -> dict[str, Any]:
    """The snapshot of the Manim importable here, as JSON data. Imports Manim (and STAR_MODULES)."""
    import manim

    namespace: dict[str, Any] = {}
    exec("from manim import *", namespace)  # noqa: S102 - a constant: exactly what a scene's star import brings
    namespace.pop("__builtins__", None)
    names = {name: _kind(value) for name, value in sorted(namespace.items())}
    callables: dict[str, dict[str, Any]] = {}
    mro: dict[str, list[str]] = {}
    keys = {id(v): n for n, v in namespace.items() if isinstance(v, type)}  # a class by its public name
    for name, value in namespace.items():
        if isinstance(value, type):
            accepted, is_open = class_keywords(value)
            callables[name] = {"keywords": accepted, "open": is_open}
            chain = [c for c in value.__mro__ if c is not object]
            mro[name] = [keys.get(id(c)) or _private_key(c) for c in chain]
            for klass in chain:
                _methods(klass, keys.get(id(klass)) or _private_key(klass), callables)
        elif callable(value) and (found := function_keywords(value)) is not None:
            callables[name] = {"keywords": found[0], "open": found[1]}
    modules: dict[str, list[str]] = {}
    for module in STAR_MODULES:
        star: dict[str, Any] = {}
        with contextlib.suppress(ImportError):
            exec(f"from {module} import *", star)  # noqa: S102 - a name from the constant list above
            modules[module] = sorted(n for n in star if n != "__builtins__")
    return {
        "format": FORMAT,
        "manim": manim.__version__,
        "python": sys.version.split()[0],
        "names": names,
        "callables": callables,
        "mro": mro,
        "modules": modules,
    }


def _kind(value: Any) -> str:
    if isinstance(value, type):
        return "class"
    if isinstance(value, types.ModuleType):
        return "module"
    return "function" if callable(value) else "constant"


def _private_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _methods(cls: type, key: str, out: dict[str, dict[str, Any]]) -> None:
    """The public methods `cls` defines itself, under `key.<method>`."""
    for name, raw in vars(cls).items():
        if name.startswith("_") or f"{key}.{name}" in out:
            continue
        func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
        if not inspect.isfunction(func):
            continue
        found = function_keywords(func, drop_first=not isinstance(raw, staticmethod))
        if found is not None:
            out[f"{key}.{name}"] = {"keywords": found[0], "open": found[1]}


def function_keywords(func: Any, drop_first: bool = False) -> tuple[list[str], bool] | None:
    """(keyword parameters, open) of a function; None when its signature is unknown."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return None
    if drop_first and params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    # A decorated function may take more than the signature it copied (e.g. deprecated names).
    is_open = any(p.kind is p.VAR_KEYWORD for p in params) or hasattr(func, "__wrapped__")
    return names, is_open


def class_keywords(cls: type) -> tuple[list[str], bool]:
    """The keyword arguments `cls(...)` accepts, following **kwargs along the MRO; and whether any other is.

    An `__init__` with **kwargs counts as passing them on only when all it does with them is
    `super().__init__(..., **kwargs)` (or `Base.__init__(self, ..., **kwargs)`) and reading
    named entries (`kwargs.pop("x")`, which makes `x` accepted). Anything else, an `__init__`
    without source, a decorated one, a metaclass with its own `__call__`: open, so that
    nothing it takes can be reported as unknown.
    """
    if type(cls).__call__ is not type.__call__:  # an Enum, or another metaclass deciding what a call takes
        return [], True
    seen: list[str] = []
    for klass in cls.__mro__:
        if klass is object:
            break  # object.__init__ takes no keywords
        init = vars(klass).get("__init__")
        if init is None:
            if "__new__" in vars(klass):  # built by __new__ alone: unknown here
                return _unique(seen), True
            continue
        if not inspect.isfunction(init) or hasattr(init, "__wrapped__"):
            return _unique(seen), True
        found = function_keywords(init, drop_first=True)
        if found is None:
            return _unique(seen), True
        seen += found[0]
        params = inspect.signature(init).parameters.values()
        var = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
        if var is None:
            return _unique(seen), False
        use = _kwargs_use(init, var)
        if use is None:
            return _unique(seen), True
        forwarded, read = use
        seen += read
        if not forwarded:  # taken and dropped: a call with any keyword succeeds
            return _unique(seen), True
    return _unique(seen), False


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _kwargs_use(func: Any, var: str) -> tuple[bool, list[str]] | None:
    """(forwarded to the base's __init__, names read from it) for `**var` of `func`; None: any other use."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    forwarded, read = False, []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and node.id == var):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.keyword) and parent.arg is None and _is_base_init(parents.get(parent)):
            forwarded = True
        elif isinstance(parent, ast.Attribute) and parent.attr in ("pop", "get", "setdefault"):
            call = parents.get(parent)
            if not (isinstance(call, ast.Call) and call.func is parent and call.args):
                return None
            if not (isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
                return None
            read.append(call.args[0].value)
        elif isinstance(parent, ast.Attribute) and parent.attr == "update":
            continue
        elif isinstance(parent, ast.Subscript) and isinstance(parent.slice, ast.Constant):
            if not isinstance(parent.slice.value, str):
                return None
            read.append(parent.slice.value)
        elif isinstance(parent, ast.Compare) and node in parent.comparators:
            if not (isinstance(parent.left, ast.Constant) and isinstance(parent.left.value, str)):
                return None
            read.append(parent.left.value)
        elif isinstance(parent, (ast.If, ast.BoolOp, ast.UnaryOp)):  # `if kwargs:` tests, takes nothing
            continue
        else:
            return None
    return forwarded, read


def _is_base_init(call: ast.AST | None) -> bool:
    """`super().__init__(...)`, `super(C, self).__init__(...)` or `Base.__init__(self, ...)`."""
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "__init__"):
        return False
    owner = call.func.value
    if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
        return True
    return isinstance(owner, (ast.Name, ast.Attribute))


def child_main(path: str, timeout: float) -> None:
    """The builder process: make the snapshot and write it to `path` atomically."""
    signal.alarm(max(1, int(timeout)))  # bounded even if the process that started it is gone
    data = json.dumps(build(), separators=(",", ":"), sort_keys=True).encode("utf-8")
    write_atomic(Path(path), data)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
