"""A snapshot of Manim's public API, so that scenes are checked against it without importing Manim.

`from manim import *` brings some 580 names; a generated scene that misspells one, or
passes a keyword argument a class does not take, fails only after the render child has
imported Manim and run the scene up to that line, one mistake per render. The snapshot
lists every name (class, function, constant or module) and, for each callable, the
keyword arguments it accepts: for a class the effective set, following `**kwargs` up the
MRO the way Manim's `__init__`s pass them on, and whether it ends in a `**kwargs` that
takes anything. `watcher.validate` checks scenes against it, all mistakes at once.

It is made once per Manim version by a fresh trusted interpreter (`python -I`, scrubbed
environment, a timeout; no scene code runs in it) running `watcher.apibuild`, and kept as
JSON in `<folders.work>/../cache/manim-api-<version>.json` (the `cache` folder beside `work`),
written atomically and verified on every read: a file that does not parse or has the
wrong shape is made again. Nothing here waits for it unless asked (`validation.api_wait`):
a check that finds no snapshot starts making one in the background and is skipped.

This module is the daemon's side: the `Snapshot` as read, where it is kept, and having it
made. Pure on import: Manim is imported only by `apibuild.build`, in the builder process.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .apibuild import FORMAT, KINDS, write_atomic
from .apibuild import class_keywords as class_keywords  # still importable from here
from .config import Settings

log = logging.getLogger(__name__)

BUILD_TIMEOUT = 120.0  # seconds; importing Manim takes about 1.3 s, the whole build about 3 s
_MAX_BYTES = 16 * 1024 * 1024
_CHILD = "import sys; from watcher.apibuild import child_main; child_main(sys.argv[1], float(sys.argv[2]))"


@dataclass(frozen=True)
class Keywords:
    """The keyword arguments one callable accepts; `open`: it also takes any other (an open **kwargs)."""

    names: tuple[str, ...]
    open: bool


@dataclass(frozen=True)
class Snapshot:
    """Manim's public API as `from manim import *` brings it."""

    manim: str
    names: dict[str, str]  # name -> class | function | constant | module
    callables: dict[str, Keywords]  # "Circle", "Axes.plot" (methods under their class's key)
    bases: dict[str, tuple[str, ...]]  # class key -> the keys of its MRO, itself first
    modules: dict[str, frozenset[str]]  # apibuild.STAR_MODULES -> the names `from X import *` brings

    def keywords(self, name: str) -> Keywords | None:
        """What `name(...)` accepts, for a public callable of Manim's."""
        return self.callables.get(name) if "." not in name else None

    def method(self, cls: str, name: str) -> Keywords | None:
        """What `cls.name(...)` accepts: the method as the class finds it along its MRO."""
        for key in self.bases.get(cls, ()):
            if (found := self.callables.get(f"{key}.{name}")) is not None:
                return found
        return None

    @classmethod
    def from_json(cls, data: Any, version: str) -> Snapshot:
        """The snapshot in `data` (parsed JSON).

        Raises:
            ValueError: the data is not a snapshot of this format and of Manim `version`.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a snapshot of format {FORMAT}")
        if data.get("manim") != version:
            raise ValueError(f"a snapshot of Manim {data.get('manim')!r}, not {version}")
        names = data.get("names")
        if not isinstance(names, dict) or not names or not all(v in KINDS for v in names.values()):
            raise ValueError("names: not a mapping of names to kinds")
        callables: dict[str, Keywords] = {}
        for key, entry in _mapping(data, "callables").items():
            if not isinstance(entry, dict) or not isinstance(entry.get("open"), bool):
                raise ValueError(f"callables.{key}: not {{keywords, open}}")
            callables[key] = Keywords(_strings(entry.get("keywords"), f"callables.{key}"), entry["open"])
        bases = {key: _strings(v, f"mro.{key}") for key, v in _mapping(data, "mro").items()}
        modules = {key: frozenset(_strings(v, f"modules.{key}")) for key, v in _mapping(data, "modules").items()}
        return cls(version, dict(names), callables, bases, modules)


def _mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"{key}: not a mapping")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: not a list of names")
    return tuple(value)


# -- the daemon's side: find, verify, and have it made ---------------------------------------------

_lock = threading.Lock()
_loaded: dict[Path, Snapshot] = {}
_builds: dict[str, _Build] = {}  # Manim version -> its build in this process (one at most)
_logged: set[tuple[str, str]] = set()
_log_lock = threading.Lock()
_version: list[str | None] = []  # the installed Manim's version, once looked up


class _Build:
    """One builder process for a Manim version, and the cache files waiting for its snapshot."""

    def __init__(self, version: str, path: Path, timeout: float):
        self.version = version
        self.waiting: dict[Path, threading.Event] = {path: threading.Event()}
        self.text: bytes | None = None
        self.failed = False
        self.thread = threading.Thread(target=self._run, args=(path, timeout), name="apisnapshot", daemon=True)

    def _run(self, path: Path, timeout: float) -> None:
        try:
            text = _run_builder(path, self.version, timeout)
        except Exception as e:  # noqa: BLE001 - without a snapshot the check is skipped, nothing else
            _log_once("failed", self.version, logging.WARNING, "the Manim API snapshot could not be made (%s)", e)
            text = None
        with _lock:
            self.text, self.failed = text, text is None
            waiting, self.waiting = self.waiting, {}
        for other, event in waiting.items():
            if text is not None and other != path:
                _store(other, text)
            event.set()

    def request(self, path: Path) -> threading.Event:
        """An event set once `path` holds the snapshot (or the build failed). Call under _lock."""
        if self.text is not None or self.failed:
            if self.text is not None:
                _store(path, self.text)
            done = threading.Event()
            done.set()
            return done
        return self.waiting.setdefault(path, threading.Event())


def manim_version() -> str | None:
    """The installed Manim's version, from its package metadata (Manim is not imported)."""
    if not _version:
        try:
            _version.append(importlib.metadata.version("manim"))
        except importlib.metadata.PackageNotFoundError:
            _version.append(None)
    return _version[0]


def snapshot_path(settings: Settings) -> Path | None:
    """Where the snapshot of the installed Manim is kept for `settings`; None when there is no such place.

    Settings whose folders were not resolved (a bare `Settings()`: `load_config` and
    `default_settings` resolve them) have none, so library calls never write beside the cwd.
    """
    version = manim_version()
    work = settings.folders.work
    if version is None or not work.is_absolute():
        return None
    return settings.folders.cache_dir / f"manim-api-{version}.json"


def get(settings: Settings, wait: float | None = None) -> Snapshot | None:
    """The snapshot for `settings`, or None when it is not there (yet), which starts making it.

    A missing or bad file is made again by a builder process in the background; this call
    then returns None (the check it serves is skipped) unless `wait` (default
    `validation.api_wait`) gives it seconds to wait for it. Never raises.
    """
    path = snapshot_path(settings)
    if path is None:
        return None
    with _lock:
        if (snap := _loaded.get(path)) is not None:
            return snap
    version = manim_version()
    assert version is not None
    if (snap := _read(path, version)) is not None:
        return snap
    wait = settings.validation.api_wait if wait is None else wait
    with _lock:
        build = _builds.get(version)
        if build is None:
            if not _cache_dir(path.parent):
                return None
            build = _builds[version] = _Build(version, path, BUILD_TIMEOUT)
            _log_once("build", version, logging.INFO, "making the Manim %s API snapshot in %s", version, path)
            build.thread.start()
        done = build.request(path)
    if wait <= 0 or not done.wait(wait):
        return None
    return _read(path, version)


def _read(path: Path, version: str) -> Snapshot | None:
    """The verified snapshot at `path`, remembered for the process; None when missing or bad (logged once)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        _log_once("read", str(path), logging.WARNING, "cannot read the Manim API snapshot %s: %s", path, e)
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            snap = Snapshot.from_json(json.loads(f.read(_MAX_BYTES + 1)[:_MAX_BYTES]), version)
    except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        _log_once("bad", str(path), logging.WARNING, "the Manim API snapshot %s is unusable (%s); remaking it", path, e)
        return None
    with _lock:
        _loaded[path] = snap
    return snap


def _store(path: Path, text: bytes) -> None:
    """Put a snapshot this process made at another cache location (another configuration's)."""
    try:
        if _cache_dir(path.parent):
            write_atomic(path, text)
    except OSError as e:
        _log_once("write", str(path), logging.WARNING, "cannot write the Manim API snapshot %s: %s", path, e)


def _cache_dir(folder: Path) -> bool:
    """Create the cache folder if missing; False unless it is a directory of ours that only we can write."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(folder)
    except OSError as e:
        _log_once("dir", str(folder), logging.WARNING, "no Manim API snapshot: cannot create %s: %s", folder, e)
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        msg = "no Manim API snapshot: %s is not a private directory of this user"
        _log_once("dir", str(folder), logging.WARNING, msg, folder)
        return False
    return True


def _run_builder(path: Path, version: str, timeout: float) -> bytes:
    """Run the builder in a fresh interpreter; the verified JSON it wrote to `path`.

    Raises:
        RuntimeError: it failed, timed out, or wrote no valid snapshot.
    """
    from .sandbox import child_environment  # the scrubbed environment of a render child

    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", _CHILD, str(path), str(timeout)],
        cwd=path.parent,
        env=child_environment(path.parent),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # it finishes (and writes) even if this process exits first
    )
    try:
        _, err = proc.communicate(timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise RuntimeError(f"the builder took more than {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        raise RuntimeError(f"the builder failed: {tail[0][:300]}")
    text = path.read_bytes()
    Snapshot.from_json(json.loads(text), version)  # raises ValueError: caught by the caller
    return text


def _log_once(what: str, key: str, level: int, msg: str, *args: Any) -> None:
    with _log_lock:
        if (what, key) in _logged:
            return
        _logged.add((what, key))
    log.log(level, msg, *args)
