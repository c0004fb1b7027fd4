"""Settings: `config.yaml` loaded into typed, frozen dataclasses.

Defaults live on the fields, so an empty file is a valid config. Unknown keys and
wrong types are errors that name the dotted key and the bad value. Relative folder
paths are taken relative to the config file's own directory.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError

# Manim settings a scene may set at module level that the render settings replace (quality,
# frame rate, renderer); `meta.json` lists those a scene had set ("overridden").
ENFORCED_SETTINGS = ("pixel_width", "pixel_height", "frame_rate", "renderer")
# Manim's pixel size for each quality (manim.constants.QUALITIES), without importing Manim.
RESOLUTIONS = {
    "low_quality": (854, 480),
    "medium_quality": (1280, 720),
    "high_quality": (1920, 1080),
    "production_quality": (2560, 1440),
    "fourk_quality": (3840, 2160),
}
QUALITIES = {
    # Manim's own names, plus the CLI's one-letter flags as aliases.
    "low_quality": "low_quality",
    "medium_quality": "medium_quality",
    "high_quality": "high_quality",
    "production_quality": "production_quality",
    "fourk_quality": "fourk_quality",
    "l": "low_quality",
    "m": "medium_quality",
    "h": "high_quality",
    "p": "production_quality",
    "k": "fourk_quality",
}

# Calls the default policy refuses, matched against the dotted name at the call site.
DEFAULT_FORBIDDEN_CALLS = (
    "eval",
    "exec",
    "compile",
    "__import__",
    "breakpoint",
    "input",
    "os.system",
    "os.popen",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "os.setsid",
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.execv",
    "os.execve",
    "os.execvp",
    "os.spawnv",
    "os.posix_spawn",
    "shutil.rmtree",
    "importlib.import_module",
)
# Modules whose import the default policy refuses (a submodule counts as its parent).
DEFAULT_FORBIDDEN_IMPORTS = (
    "subprocess",
    "socket",
    "ctypes",
    "multiprocessing",
    "signal",
    "pty",
    "urllib",
    "http",
    "ftplib",
    "smtplib",
    "requests",
    "shutil",
    "pickle",
    "marshal",
    "importlib",
    "builtins",
)


def _min(value: float) -> dict[str, Any]:
    return {"min": value}


@dataclass(frozen=True)
class Folders:
    inbox: Path = Path("inbox")
    processing: Path = Path("processing")
    done: Path = Path("done")
    failed: Path = Path("failed")
    work: Path = Path("work")
    cache: Path = Path("")  # the LaTeX cache (and the Manim API snapshot); empty: `cache` beside work

    @property
    def cache_dir(self) -> Path:
        """folders.cache, or `cache` beside folders.work when it is not set."""
        return self.cache if self.cache.is_absolute() else self.work.parent / "cache"


@dataclass(frozen=True)
class Render:
    quality: str = "low_quality"
    timeout: float = field(default=300.0, metadata=_min(0.1))
    grace: float = field(default=5.0, metadata=_min(0.0))
    memory_limit_mb: int = field(default=4096, metadata=_min(0))
    max_source_bytes: int = field(default=1_000_000, metadata=_min(1))
    max_output_mb: int = field(default=2048, metadata=_min(1))
    max_log_bytes: int = field(default=65536, metadata=_min(1024))
    max_open_files: int = field(default=1024, metadata=_min(64))
    scene: str = "auto"
    warm_workers: bool = True
    still: Literal["png", "fail"] = "png"  # a scene that never animates: its last frame as <name>.png, or a failure
    max_scenes: int = field(default=20, metadata=_min(1))  # more Scene classes than this in one file: refused


@dataclass(frozen=True)
class Validation:
    enabled: bool = True
    forbidden_calls: tuple[str, ...] = DEFAULT_FORBIDDEN_CALLS
    forbidden_imports: tuple[str, ...] = DEFAULT_FORBIDDEN_IMPORTS
    # Names from older Manim or ManimGL (watcher.renames), and against a snapshot of Manim's
    # API (watcher.apisnapshot) undefined names and keyword arguments Manim does not take:
    # error refuses the scene before a render with every occurrence listed, warn only
    # reports them, off skips the check.
    api_check: Literal["error", "warn", "off"] = "error"
    # Seconds a check may wait for the API snapshot to be made (once per Manim version);
    # 0: a check that finds none skips that part while it is made in the background.
    api_wait: float = field(default=0.0, metadata=_min(0.0))
    # A generator's reply with the scene in a ```python fence: render the code in the fence.
    extract_code: bool = True
    # The daemon renders the certainly-fixed version (watcher.fix) and files it and the diff
    # beside the original: off by default, so that what is rendered is what was sent.
    autofix: bool = False


@dataclass(frozen=True)
class Workers:
    count: int = field(default=0, metadata=_min(0))


@dataclass(frozen=True)
class Daemon:
    polling: bool = False
    poll_interval: float = field(default=1.0, metadata=_min(0.05))
    rescan_interval: float = field(default=30.0, metadata=_min(0.0))
    settle_time: float = field(default=0.5, metadata=_min(0.0))
    max_attempts: int = field(default=3, metadata=_min(1))
    shutdown_grace: float = field(default=30.0, metadata=_min(0.0))
    queue_size: int = field(default=10000, metadata=_min(1))


# The isolation layers a render child can get (see watcher.sandbox), by the names that
# sandbox.require and `watcher doctor` use.
SANDBOX_LAYERS = ("user", "pid", "network", "mount", "ipc", "processes", "cgroup")


@dataclass(frozen=True)
class Sandbox:
    mode: Literal["auto", "strict", "off"] = "auto"
    user: str = "watcher-render"
    require: tuple[str, ...] = ("user", "pid", "network", "mount", "ipc", "processes")
    max_processes: int = field(default=256, metadata=_min(16))
    visible_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hooks:
    # A command (a list: program and arguments, no shell) run after a result is filed, with the
    # filed paths appended as arguments and the record (JSON) on its stdin.
    on_done: tuple[str, ...] = ()
    on_failed: tuple[str, ...] = ()
    timeout: float = field(default=60.0, metadata=_min(0.1))  # then its process group is killed


@dataclass(frozen=True)
class Logging:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class Cache:
    latex: bool = True  # typeset through watcher's service, with the shared LaTeX cache in folders.cache
    max_mb: int = field(default=1024, metadata=_min(1))  # then the least recently used entries go


# Where renders run: here, or on Celery workers (`watcher worker`) through a Redis broker.
EXECUTORS = ("local", "celery")
SANDBOX_STRENGTH = {"off": 0, "auto": 1, "strict": 2}  # a task may ask a worker for more, never for less


@dataclass(frozen=True)
class Celery:
    # The Redis broker, also the result store. WATCHER_BROKER_URL, when set, is used instead,
    # so that a password need not sit in this file.
    broker_url: str = "redis://127.0.0.1:6379/0"
    queue: str = "watcher"
    # How outputs come back: `shared`, written by workers to shared_folder (a folder the front
    # and every worker see), or `inline`, in the task's result (no shared storage; capped).
    results: Literal["shared", "inline"] = "shared"
    shared_folder: Path = Path("")  # empty: `shared` beside folders.work (front and workers on one machine)
    inline_max_mb: int = field(default=32, metadata=_min(1))
    max_retries: int = field(default=2, metadata=_min(0))  # runs again of a task whose worker process was lost
    concurrency: int = field(default=0, metadata=_min(0))  # processes of `watcher worker`; 0: one per CPU

    @property
    def broker(self) -> str:
        return os.environ.get("WATCHER_BROKER_URL") or self.broker_url


@dataclass(frozen=True)
class Settings:
    executor: Literal["local", "celery"] = "local"
    folders: Folders = field(default_factory=Folders)
    render: Render = field(default_factory=Render)
    validation: Validation = field(default_factory=Validation)
    workers: Workers = field(default_factory=Workers)
    daemon: Daemon = field(default_factory=Daemon)
    sandbox: Sandbox = field(default_factory=Sandbox)
    hooks: Hooks = field(default_factory=Hooks)
    logging: Logging = field(default_factory=Logging)
    cache: Cache = field(default_factory=Cache)
    celery: Celery = field(default_factory=Celery)
    # Where the config was read from; relative folders were resolved against its directory.
    path: Path | None = field(default=None, compare=False)

    @property
    def worker_count(self) -> int:
        return self.workers.count or os.cpu_count() or 1

    def render_summary(self) -> dict[str, Any]:
        """The settings that shape a render, as recorded in results and error records."""
        return {
            "quality": self.render.quality,
            "timeout": self.render.timeout,
            "grace": self.render.grace,
            "memory_limit_mb": self.render.memory_limit_mb,
            "scene": self.render.scene,
            "still": self.render.still,
            "validation": self.validation.enabled,
            # "off" marks every record of a render that ran without isolation.
            "sandbox": self.sandbox.mode,
        }


def load_config(path: str | os.PathLike[str] | None = None, overrides: list[str] | None = None) -> Settings:
    """Read `path` (or use defaults when None), apply `key.path=value` overrides.

    Raises:
        ConfigError: one clear line naming the file, key and bad value.
    """
    raw: Any = {}
    base = Path.cwd()
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read config file {p}: {e}") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"invalid YAML in {p}{where}: {problem}") from None
        if raw is None:
            raw = {}
        base = p.resolve().parent
    if not isinstance(raw, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(raw).__name__}")
    raw = _apply_overrides(raw, overrides or [])
    settings = _build(Settings, raw, "")
    return _resolved(settings, base, Path(path).resolve() if path else None)


def default_settings(base: Path | None = None) -> Settings:
    """Defaults with folders under `base` (the current directory when None)."""
    return _resolved(Settings(), base or Path.cwd(), None)


def _resolved(settings: Settings, base: Path, path: Path | None) -> Settings:
    folders = _resolve(settings.folders, base)
    shared = settings.celery.shared_folder.expanduser()
    if shared == Path(""):
        shared = folders.work.parent / "shared"
    celery = dataclasses.replace(settings.celery, shared_folder=shared if shared.is_absolute() else base / shared)
    return dataclasses.replace(settings, folders=folders, celery=celery, path=path)


def _resolve(folders: Folders, base: Path) -> Folders:
    """Folders with relative paths taken relative to `base`."""
    resolved = {}
    for f in dataclasses.fields(Folders):
        p = getattr(folders, f.name).expanduser()
        resolved[f.name] = p if p.is_absolute() else base / p
    if folders.cache == Path(""):  # not set: beside work
        resolved["cache"] = resolved["work"].parent / "cache"
    return Folders(**resolved)


def _apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    raw = _deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key.path=value, got {item!r}")
        parts = key.strip().split(".")
        node = raw
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"{key}: {part} is not a section")
            node = nxt
        try:
            node[parts[-1]] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            node[parts[-1]] = value
    return raw


def _deepcopy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    return d


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    unknown = sorted(set(map(str, raw)) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {prefix}{unknown[0]} (known keys in {where}: {', '.join(sorted(fields))})")
    values = {}
    for name, value in raw.items():
        key = f"{prefix}{name}"
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value if value is not None else {}, key + ".")
        else:
            values[name] = _coerce(key, hint, value)
            minimum = fields[name].metadata.get("min")
            if minimum is not None and values[name] < minimum:
                raise ConfigError(f"{key} must be >= {minimum}, got {value!r}")
    obj = cls(**values)
    if cls is Render:
        _check_render(obj)
        obj = dataclasses.replace(obj, quality=QUALITIES[obj.quality])
    if cls is Sandbox:
        _check_sandbox(obj)
    if cls is Celery and not obj.broker_url.startswith(("redis://", "rediss://", "redis+socket://")):
        raise ConfigError(f"celery.broker_url must be a redis:// URL, got {obj.broker_url!r}")
    return obj


def _coerce(key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value is False and "off" in choices:  # YAML 1.1 reads a bare `off` as false
            value = "off"
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        raise AssertionError(f"unsupported config type for {key}")  # not used by any field
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, list):
            raise ConfigError(f"{key} must be a list of strings, got {value!r}")
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of strings, got {value!r}")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key} must be a path, got {value!r}")
        return Path(value)
    raise AssertionError(f"unsupported config type {hint!r} for {key}")


def _check_render(r: Render) -> None:
    if r.quality not in QUALITIES:
        raise ConfigError(f"render.quality must be one of {', '.join(QUALITIES)}; got {r.quality!r}")
    if r.scene not in ("auto", "all") and not r.scene.isidentifier():
        raise ConfigError(f"render.scene must be auto, all or a class name; got {r.scene!r}")


def _check_sandbox(s: Sandbox) -> None:
    unknown = [name for name in s.require if name not in SANDBOX_LAYERS]
    if unknown:
        raise ConfigError(f"sandbox.require: unknown layer {unknown[0]!r}; the layers are {', '.join(SANDBOX_LAYERS)}")
    relative = [p for p in s.visible_paths if not p.startswith("/")]
    if relative:
        raise ConfigError(f"sandbox.visible_paths must be absolute paths, got {relative[0]!r}")
