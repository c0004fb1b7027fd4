"""`watcher doctor`: is this host ready to render? One line per check, each with a fix.

Every check is a small function returning a `Check`; an exception inside one becomes a
FAIL line rather than ending the run, so the rest is still reported.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import pwd
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from . import sandbox
from .config import Settings
from .errors import WatcherError
from .folders import FOLDER_KEYS
from .layout import Layout

log = logging.getLogger(__name__)

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SETUP = "bash scripts/setup.sh"

# Exercises latex and dvisvgm (MathTex), plus Cairo and the PyAV encoder.
MATHTEX_SCENE = b"""from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        self.add(MathTex(r"e^{i\\pi} + 1 = 0"))
        self.wait(0.1)
"""


@dataclass(frozen=True)
class Check:
    name: str
    level: str  # OK | WARN | FAIL
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level:<4}  {self.name:<18} {self.detail}"
        return f"{text}; fix: {self.fix}" if self.fix and self.level != OK else text


def run_checks(settings: Settings) -> list[Check]:
    """All checks, in the order a person would fix them."""
    checks: list[tuple[str, Callable[[], Check | list[Check]]]] = [
        ("python", check_python),
        ("packages", check_packages),
        ("cairo, pango", check_cairo_pango),
        ("video encoder", check_encoder),
        ("latex, dvisvgm", lambda: check_latex(settings)),
        ("folders", lambda: check_folders(settings)),
        ("inotify", check_inotify),
        ("isolation", lambda: check_isolation(settings)),
        ("render user", lambda: check_render_user(settings)),
        ("systemd", check_systemd),
        ("celery broker", lambda: check_broker(settings)),
    ]
    results: list[Check] = []
    for name, check in checks:
        try:
            got = check()
        except Exception as e:  # a broken check is itself a finding, never the end of the run
            log.debug("the %s check failed", name, exc_info=True)
            got = Check(name, FAIL, f"the check itself failed: {type(e).__name__}: {e}")
        results.extend(got if isinstance(got, list) else [got])
    return results


def check_python() -> Check:
    # Installing watcher already required 3.11+: this line is for the bug report.
    return Check("python", OK, f"{platform.python_version()} at {sys.executable}")


def check_packages() -> list[Check]:
    """Manim's version, and whether every pinned dependency is installed at its pin."""
    try:
        manim = metadata.version("manim")
    except metadata.PackageNotFoundError:
        return [Check("manim", FAIL, "not installed", SETUP)]
    off = []
    for req in metadata.requires("watcher") or []:
        if "extra ==" in req or "==" not in req:
            continue
        name, pinned = (part.strip() for part in req.split(";")[0].split("=="))
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "missing"
        if have != pinned:
            off.append(f"{name} {have} (pinned {pinned})")
    pins = Check("pinned packages", OK, "all installed at their pins")
    if off:
        pins = Check("pinned packages", WARN, ", ".join(off), f"{SETUP} (installs with -c constraints.txt)")
    return [Check("manim", OK, manim), pins]


def check_cairo_pango() -> Check:
    try:
        import cairo
        import manimpango
    except ImportError as e:
        return Check("cairo, pango", FAIL, str(e), f"apt-get install libcairo2-dev libpango1.0-dev pkg-config; {SETUP}")
    return Check("cairo, pango", OK, f"Cairo {cairo.cairo_version_string()}, Pango {manimpango.pango_version()}")


def check_encoder() -> Check:
    import av

    try:
        av.codec.Codec("libx264", "w")
    except Exception as e:  # UnknownCodecError; its module moved between PyAV versions
        return Check("video encoder", FAIL, f"PyAV {av.__version__}: no libx264 encoder ({e})", f"{SETUP}")
    return Check("video encoder", OK, f"PyAV {av.__version__} with libx264")


def check_latex(settings: Settings) -> Check:
    """Render a tiny MathTex through the real render path: latex, dvisvgm, Cairo, the encoder."""
    from .pipeline import render_job

    fix = f"apt-get install texlive-latex-base texlive-latex-extra texlive-fonts-recommended dvisvgm (or {SETUP})"
    missing = [tool for tool in ("latex", "dvisvgm") if shutil.which(tool) is None]
    if missing:
        return Check("latex, dvisvgm", FAIL, f"not on PATH: {', '.join(missing)}", fix)
    with tempfile.TemporaryDirectory(prefix="watcher-doctor-") as tmp:
        # A private work folder: the check must not depend on (or litter) the configured one.
        folders = dataclasses.replace(settings.folders, work=Path(tmp) / "work")  # its cache/ goes in tmp too
        settings = dataclasses.replace(settings, folders=folders)
        started = time.monotonic()
        with render_job(MATHTEX_SCENE, "doctor_mathtex.py", settings) as result:
            elapsed = time.monotonic() - started
            if result.ok:
                return Check("latex, dvisvgm", OK, f"a MathTex scene rendered in {elapsed:.1f} s")
            assert result.record is not None
            record = result.record
    if record.phase == "environment":
        return Check("latex, dvisvgm", FAIL, f"test render failed: {record.type}: {record.message}", fix)
    return Check("latex, dvisvgm", FAIL, f"test render failed: {record.summary()}", "see `watcher render` output")


def check_folders(settings: Settings) -> Check:
    """Present, writable, distinct, and claims can be renames (the layout's own start-up check)."""
    folders = settings.folders
    where = f" (config {settings.path})" if settings.path else " (no config file: defaults in the current folder)"
    if not folders.inbox.is_dir():
        return Check("folders", FAIL, f"no inbox at {folders.inbox}{where}", f"mkdir -p {folders.inbox}")
    missing = [key for key in FOLDER_KEYS if not getattr(folders, key).exists()]
    if missing:
        return Check("folders", WARN, f"missing: {', '.join(missing)}{where}", "`watcher run` creates them")
    try:
        Layout.from_settings(settings).check()
    except WatcherError as e:
        return Check("folders", FAIL, str(e), "fix the folder, or the folders.* keys of the config")
    devices = {key: os.stat(getattr(folders, key)).st_dev for key in FOLDER_KEYS}
    apart = sorted(key for key, dev in devices.items() if dev != devices["inbox"])
    if apart:
        return Check(
            "folders",
            WARN,
            f"{', '.join(apart)} on another filesystem than the inbox: publishing copies instead of renaming",
            "keep all folders on one filesystem",
        )
    return Check("folders", OK, f"present, writable, one filesystem, under {folders.inbox.parent}")


def check_broker(settings: Settings) -> list[Check]:
    """With executor: celery, the broker answers and the shared folder is there."""
    if settings.executor != "celery":
        return []
    try:
        from .celeryconf import make_app

        app = make_app(settings)
        app.backend.client.ping()
        # Workers answering on the queue: a front with none waits (its jobs stay claimed).
        replies = app.control.inspect(timeout=1.0).active_queues() or {}
    except ImportError as e:
        return [Check("celery broker", FAIL, f"executor: celery without the celery extra: {e}", SETUP)]
    except Exception as e:  # noqa: BLE001 - any failure to reach Redis
        fix = "start Redis, or fix celery.broker_url / WATCHER_BROKER_URL"
        return [Check("celery broker", FAIL, f"cannot reach the broker: {type(e).__name__}", fix)]
    queue = settings.celery.queue
    serving = sorted(name for name, queues in replies.items() if any(q.get("name") == queue for q in queues))
    checks = [Check("celery broker", OK, f"answers; queue {queue!r}")]
    if serving:
        checks.append(Check("celery workers", OK, f"{len(serving)} on queue {queue!r}: {', '.join(serving)}"))
    else:
        checks.append(
            Check("celery workers", WARN, f"none answering on queue {queue!r}", "start `watcher worker` somewhere")
        )
    if settings.celery.results == "shared" and not settings.celery.shared_folder.is_dir():
        folder = settings.celery.shared_folder
        checks.append(
            Check("shared folder", WARN, f"{folder} does not exist", f"mount or create it: mkdir -p {folder}")
        )
    return checks


def check_inotify() -> Check:
    base = Path("/proc/sys/fs/inotify")
    try:
        watches = int((base / "max_user_watches").read_text())
        instances = int((base / "max_user_instances").read_text())
    except (OSError, ValueError):
        return Check("inotify", WARN, "limits unreadable (no inotify?)", "set daemon.polling: true")
    detail = f"max_user_watches {watches}, max_user_instances {instances}"
    # The daemon needs one instance and one watch; other programs of the same user share the limits.
    if instances < 8 or watches < 1024:
        return Check(
            "inotify", WARN, detail, "sysctl fs.inotify.max_user_instances=128 fs.inotify.max_user_watches=65536"
        )
    return Check("inotify", OK, detail)


# What to do about a layer render children do not get.
LAYER_FIXES = {
    "user": "run the daemon as root with sandbox.user (scripts/setup.sh creates watcher-render)",
    "pid": "allow user namespaces (sysctl kernel.unprivileged_userns_clone=1), or run outside a restrictive container",
    "network": "as for pid: the network namespace needs unshare(2)",
    "mount": "as for pid: the private root needs a mount namespace",
    "ipc": "as for pid: the IPC namespace needs unshare(2)",
    "processes": "as for pid: the per-render process count needs a user namespace",
    "cgroup": "a cgroup v2 host with the memory and pids controllers delegated (systemd Delegate=yes)",
}


def check_isolation(settings: Settings) -> list[Check]:
    """The isolation layers render children get here, from a real probe through the sandbox.

    A missing layer is a WARN, or a FAIL when sandbox.mode is strict and requires it.
    """
    layers = sandbox.detect(settings)
    strict = settings.sandbox.mode == "strict"
    checks = []
    for name, layer in layers.items():
        if layer.available:
            level = OK
        else:
            level = FAIL if strict and name in settings.sandbox.require else WARN
        checks.append(Check(f"sandbox: {name}", level, layer.reason, LAYER_FIXES.get(name, "")))
    return checks


def check_render_user(settings: Settings) -> list[Check]:
    """Can the render user search every folder on the way to Python, watcher and folders.work?

    A root daemon runs each render as sandbox.user. Without the sandbox's mount layer (which
    mounts those paths into the job's private root) that user needs search permission on
    every folder on the way, and a clone inside a folder only root may enter (`mktemp -d`
    makes them 0700) fails every render. No line when renders keep the daemon's user: not
    root, sandbox.mode off, or no such user (the "sandbox: user" line says why).
    """
    entry, _ = sandbox._render_user(settings.sandbox.user)
    if os.geteuid() != 0 or settings.sandbox.mode == "off" or entry is None:
        return []
    user = settings.sandbox.user
    checks = []
    # _unreachable also walks to sys.prefix, the standard library and watcher's package;
    # for folders.work, only a folder on its own way counts (the rest is Python's line).
    folder = sandbox._unreachable(Path(sys.executable), entry)
    if folder:
        paths = [sys.executable, *sandbox._python_paths()]
        where = next((p for p in paths if Path(p).is_relative_to(folder)), sys.prefix)
        checks.append(_unsearchable(user, entry, folder, f"Python and watcher ({where})"))
    work = os.path.abspath(settings.folders.work)
    folder = sandbox._unreachable(Path(work), entry)
    if folder and Path(work).is_relative_to(folder):
        checks.append(_unsearchable(user, entry, folder, f"folders.work ({work})"))
    return checks or [Check("render user", OK, f"{user} can reach Python, watcher and folders.work")]


def _unsearchable(user: str, entry: pwd.struct_passwd, folder: str, what: str) -> Check:
    st = os.stat(folder)
    who = "u" if st.st_uid == entry.pw_uid else "g" if st.st_gid == entry.pw_gid else "o"
    return Check(
        "render user",
        WARN,
        f"{user} cannot search {folder} (mode {stat.S_IMODE(st.st_mode):04o}) on the way to {what}: "
        "renders get there only through the sandbox's mount layer; without it every render fails",
        f"chmod {who}+x {folder} (lets others pass through it, not list it), or keep that outside {folder}",
    )


def check_systemd() -> Check:
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        return Check("systemd", OK, "running; `watcher service --install` applies")
    return Check(
        "systemd",
        WARN,
        "not running here (no /run/systemd/system)",
        "run `watcher run` under another supervisor, or install the unit on a systemd host",
    )
