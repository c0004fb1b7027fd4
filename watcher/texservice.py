"""Typesetting outside the scene: render children ask for SVGs; watcher's own LaTeX makes them.

Scene code is hostile, so nothing a scene's process wrote is ever served to another job.
A render child's Manim does not run LaTeX itself (`watcher.texclient` replaces its
`compile_tex`): it sends the whole `.tex` document over a socket the sandbox leaves open
to a `JobService` thread in the parent, which answers from the cache (`watcher.texcache`)
or has the `Typesetter` run LaTeX and dvisvgm on exactly that document:

  - in a private directory under folders.work that no scene can name (like a job's);
  - as the render user when the daemon is root;
  - with no shell escape, kpathsea's paranoid `openin_any`/`openout_any` (no file outside
    that directory, no absolute path), a wall-clock limit and a size limit on the SVG.

Two jobs asking for the same document wait for one run (single flight). A job may ask
`MAX_REQUESTS` times, for documents of at most `MAX_DOCUMENT` bytes. A LaTeX error comes
back with LaTeX's log, which the child writes where Manim would have, so the record's
`latex` block is as it was. The job's own timeout covers its waits.

Wire format, both ways: a 4-byte big-endian length, then JSON. Request {"tex", "compiler",
"format"}; reply {"svg"} or {"error", "log"}.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import jobfs, texformat
from .config import Settings
from .texcache import TexCache, cache_key, is_svg
from .texformat import Formats

log = logging.getLogger(__name__)

MAX_DOCUMENT = 64 * 1024  # bytes of one .tex document a job may send
MAX_REQUESTS = 5000  # documents per job
MAX_LOG = 256 * 1024  # bytes of LaTeX's log sent back on an error
TEX_TIMEOUT = 60.0  # seconds for one latex + dvisvgm run
BACKGROUND_NICE = 10  # CPU priority of work ahead of the jobs (warm-up, format builds): the jobs' own go first
COMPILERS = {"latex", "pdflatex", "xelatex", "lualatex", "luatex"}
FORMATS = {".dvi", ".xdv", ".pdf"}
_HEADER = struct.Struct(">I")


class TexFailure(Exception):
    """LaTeX could not typeset the document; `log` is its log file."""

    def __init__(self, message: str, log_text: str, stopped: bool = False):
        super().__init__(message)
        self.log = log_text
        self.stopped = stopped  # killed (timeout or cancel): no other way of typesetting it is tried


class MissingTool(Exception):
    """LaTeX or dvisvgm is not installed here (the host's fault, not the scene's)."""

    def __init__(self, tool: str):
        super().__init__(f"{tool} is not installed on this host")
        self.tool = tool


class Typesetter:
    """Trusted typesetting into one cache, single-flight within this process."""

    def __init__(self, cache: TexCache, settings: Settings, formats: bool = True):
        self.cache = cache
        self.settings = settings
        self._lock = threading.Lock()
        # Runs under way: set when done, and an event a job sets when it waits for a background run.
        self._flights: dict[str, tuple[threading.Event, threading.Event | None]] = {}
        # Precompiled preambles, in the cache's folder; they take at most half of its size.
        self.formats = Formats(cache.folder.parent / "fmt", cache.max_bytes // 2) if formats else None
        self.formatted = 0  # documents typeset with their preamble's format
        self._local = threading.local()  # .urgent: this thread works ahead of the jobs until it is set
        self._hits = 0  # documents served from the cache
        self._typeset_runs = 0  # documents typeset here

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"cache_hits": self._hits, "typeset": self._typeset_runs}

    def svg(
        self, document: str, compiler: str | list[str], output_format: str, cancel: threading.Event | None = None
    ) -> bytes:
        """The SVG of `document` from the cache, or typeset now. Setting `cancel` (the asking
        job ended) kills a LaTeX run of its own and stops a wait for another's.

        Raises:
            TexFailure: LaTeX failed (not cached: the next request tries again).
            ValueError: a compiler or format Manim does not use.
        """
        compilers = [compiler] if isinstance(compiler, str) else list(compiler)
        if not compilers or not set(compilers) <= COMPILERS or output_format not in FORMATS:
            raise ValueError(f"unsupported TeX compiler {compiler!r} or format {output_format!r}")
        key = cache_key(document, compiler, output_format)
        while True:
            if (data := self.cache.get(key)) is not None:
                with self._lock:
                    self._hits += 1
                return data
            urgent = getattr(self._local, "urgent", None)  # None: a job asks (not work ahead of the jobs)
            with self._lock:
                flight = self._flights.get(key)
                mine = flight is None
                if mine:
                    flight = self._flights[key] = (threading.Event(), urgent)
            assert flight is not None
            done, theirs = flight
            if not mine:
                if urgent is None and theirs is not None:
                    theirs.set()  # a job waits for that background run now: it runs at normal priority
                deadline = time.monotonic() + TEX_TIMEOUT * 2
                while not done.wait(0.1) and time.monotonic() < deadline:
                    if cancel is not None and cancel.is_set():
                        raise TexFailure("cancelled: the job ended", "", stopped=True)
                continue  # the other run filled the cache, or failed: then this one tries
            try:
                # Filled between our miss and our flight? (the run before ours just ended)
                if (data := self.cache.get(key)) is None:
                    data = self._typeset(document, compilers, output_format, cancel)
                    self.cache.put(key, data)
                    with self._lock:
                        self._typeset_runs += 1
                else:
                    with self._lock:
                        self._hits += 1
                return data
            finally:
                with self._lock:
                    del self._flights[key]
                done.set()

    def _typeset(
        self, document: str, compilers: list[str], output_format: str, cancel: threading.Event | None
    ) -> bytes:
        """The SVG of `document`: with its preamble's format when there is one (`watcher.texformat`)."""
        formats = self.formats
        plan = None if formats is None else formats.plan(document, compilers, output_format)
        if formats is None or plan is None:
            return self.typeset_once(document, compilers, output_format, cancel)
        if plan.use is not None:
            try:
                data = self.typeset_once(plan.body, compilers, output_format, cancel, plan.use)
                with self._lock:
                    self.formatted += 1
                return data
            except TexFailure as e:
                if e.stopped:
                    raise
                loaded = bool(e.log)  # LaTeX writes no log when it cannot load the format
            data = self.typeset_once(document, compilers, output_format, cancel)  # a LaTeX error reads as always
            if not loaded:
                formats.failed(plan, "LaTeX could not load it")
            return data
        try:
            data = self.typeset_once(document, compilers, output_format, cancel)
        except BaseException:
            formats.abandon(plan)  # not the preamble's fault: a later document builds it
            raise
        formats.start_build(self, plan, data)  # in the background: no job waits for it
        return data

    def close(self, cancel: bool = False, timeout: float | None = None) -> bool:
        """Let a format build under way finish (or with `cancel` kill its LaTeX run), waiting up to `timeout`."""
        return self.formats is None or self.formats.close(cancel, timeout)

    @contextlib.contextmanager
    def background(self, urgent: threading.Event | None = None) -> Iterator[threading.Event]:
        """The LaTeX and dvisvgm runs this thread starts meanwhile run at BACKGROUND_NICE until
        `urgent` (yielded) is set, then at normal priority: by a job that waits for one of these
        runs (from then on jobs wait for this work: the rest of it goes at normal priority too),
        or by whoever waits for this thread."""
        self._local.urgent = urgent = urgent or threading.Event()
        try:
            yield urgent
        finally:
            self._local.urgent = None

    # -- what the format builds use too (watcher.texformat) ---------------------------------

    def typeset_once(
        self,
        document: str,
        compilers: list[str],
        output_format: str,
        cancel: threading.Event | None,
        fmt: Path | None = None,
    ) -> bytes:
        """One run of LaTeX and dvisvgm in a new private directory; with `fmt`, LaTeX loads that format."""
        root = jobfs.create(self.settings.folders.work, "tex", "typeset")  # an unguessable directory inside
        try:
            name = "document"
            user = self.prepare(root.path, document, fmt)
            for compiler in compilers:
                command = _compile_command(compiler, output_format, name)
                if fmt is not None:
                    command.insert(1, f"-fmt={texformat.NAME}")
                run = self.run_tool(command, root.path, user, cancel)
                if run.returncode != 0:
                    log_text = _read(root.path / f"{name}.log", MAX_LOG).decode("utf-8", "replace")
                    raise TexFailure(f"{compiler} error converting to {output_format[1:]}", log_text)
            # Through stdin and stdout: dvisvgm silently writes nothing when it cannot resolve its
            # directory's path (a render user below a folder it cannot search).
            command = ["dvisvgm", "--page=1", "--no-fonts", "--verbosity=0", "--stdout"]
            if output_format == ".pdf":  # dvisvgm reads a PDF only from a file
                svg = self.run_tool([*command, "--pdf", f"{name}.pdf"], root.path, user, cancel)
            else:
                with open(root.path / f"{name}{output_format}", "rb") as dvi:
                    svg = self.run_tool([*command, "--stdin"], root.path, user, cancel, stdin=dvi)
            data = svg.stdout
            if not is_svg(data):
                raise TexFailure("dvisvgm made no SVG of the document", "")
            return data
        finally:
            jobfs.discard(root.root)

    def prepare(self, path: Path, document: str, fmt: Path | None) -> pwd.struct_passwd | None:
        """Write document.tex (and the format, read-only) into a new run directory, for the user LaTeX runs as."""
        user = _render_user(self.settings)
        (path / "document.tex").write_text(document, encoding="utf-8")
        if fmt is not None:  # LaTeX as root could write through a read-only link: root gets a copy
            texformat.place(fmt, path / f"{texformat.NAME}.fmt", copy=user is None and os.geteuid() == 0)
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)
            os.chown(path / "document.tex", user.pw_uid, user.pw_gid)
        return user

    def run_tool(
        self,
        argv: list[str],
        cwd: Path,
        user: pwd.struct_passwd | None,
        cancel: threading.Event | None,
        stdin: Any = subprocess.DEVNULL,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run one tool in its own process group; killed (with its group) at TEX_TIMEOUT or on `cancel`."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(cwd),
            "LANG": "C.UTF-8",
            "shell_escape": "f",
            "openin_any": "p",
            "openout_any": "p",
            "TEXMFOUTPUT": str(cwd),
            "TEXMFVAR": str(cwd / ".texmf-var"),
            "MKTEXFMT": "0",  # a format that is missing is an error, not a reason to run fmtutil
        }
        ids: dict[str, Any] = {}
        if user is not None:
            ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                **ids,
            )
        except (FileNotFoundError, PermissionError):  # not on PATH, or not runnable by the render user
            raise MissingTool(argv[0]) from None
        urgent = getattr(self._local, "urgent", None)
        lowered = urgent is not None and not urgent.is_set()
        if lowered:
            lower_priority(proc.pid)
        deadline = time.monotonic() + TEX_TIMEOUT
        while True:
            try:
                out, _ = proc.communicate(timeout=0.1)  # retrying loses no output
                return subprocess.CompletedProcess(argv, proc.returncode, out, b"")
            except subprocess.TimeoutExpired:
                if lowered and urgent is not None and urgent.is_set():
                    lowered = False
                    lower_priority(proc.pid, 0)  # a job waits for it now (only root may raise it back)
                cancelled = cancel is not None and cancel.is_set()
                if not cancelled and time.monotonic() < deadline:
                    continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            if cancelled:
                raise TexFailure("cancelled: the job ended", "", stopped=True)
            raise TexFailure(f"{argv[0]} ran longer than {TEX_TIMEOUT:g} s", "", stopped=True)


def lower_priority(pid: int = 0, nice: int = BACKGROUND_NICE) -> None:
    """Best effort: run process `pid` (0: this one) and its children at `nice`. With the scheduler's
    autogroups (one per session: each LaTeX run, warm worker and helper has its own), a process's
    nice counts only within its session, so the session's group gets it too."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    with contextlib.suppress(OSError), open(f"/proc/{pid or 'self'}/autogroup", "w") as f:
        f.write(str(nice))


def _compile_command(compiler: str, output_format: str, name: str) -> list[str]:
    """Manim's command (make_tex_compilation_command), with shell escape off on the command line too."""
    if compiler == "xelatex":
        flags = ["-no-pdf"] if output_format == ".xdv" else []
    else:
        flags = [f"-output-format={output_format[1:]}"]
    return [compiler, "-no-shell-escape", *flags, "-interaction=batchmode", "-halt-on-error", f"{name}.tex"]


def _render_user(settings: Settings) -> pwd.struct_passwd | None:
    """The user LaTeX runs as: the render user when this process is root."""
    if os.geteuid() != 0 or settings.sandbox.mode == "off":
        return None
    try:
        entry = pwd.getpwnam(settings.sandbox.user)
    except KeyError:
        return None
    return entry if entry.pw_uid != 0 else None


def _read(path: Path, cap: int) -> bytes:
    """At most `cap` bytes of a regular file, never through a link; b"" when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as f:
        return f.read(cap)


class JobService:
    """One job's end of the typesetting service: a socket pair and the thread that answers it."""

    def __init__(self, typesetter: Typesetter, name: str):
        self.typesetter = typesetter
        self.name = name
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = ours
        self.child_fd = theirs.detach()  # inherited by the child; closed here once it started
        self.requests = 0
        self._closed = threading.Event()  # the job ended: its LaTeX runs are killed
        self._thread = threading.Thread(target=self._serve, name=f"tex-{name[:20]}", daemon=True)
        self._thread.start()

    def child_started(self) -> None:
        """The child holds its end now: drop ours, so that its exit ends the service."""
        with contextlib.suppress(OSError):
            os.close(self.child_fd)
        self.child_fd = -1

    def close(self) -> None:
        """End the service (the job is over): a LaTeX run it started is killed, with its group."""
        self.child_started()
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5.0)  # a LaTeX run of this job sees the cancel within 0.1 s

    def _serve(self) -> None:
        try:
            while (request := _receive(self._sock, MAX_DOCUMENT + 1024)) is not None:
                self.requests += 1
                _send(self._sock, self._answer(request))
        except (OSError, ValueError) as e:
            log.debug("%s: typesetting service ended: %s", self.name, e)
        finally:
            self._sock.close()  # here, not in close(): no other thread ever uses a closed number

    def _answer(self, request: Any) -> dict[str, Any]:
        if self.requests > MAX_REQUESTS:
            return {"error": f"more than {MAX_REQUESTS} LaTeX documents in one job", "log": ""}
        if not isinstance(request, dict) or not isinstance(tex := request.get("tex"), str):
            return {"error": "not a typesetting request", "log": ""}
        if len(tex.encode()) > MAX_DOCUMENT:
            return {"error": f"a LaTeX document of over {MAX_DOCUMENT} bytes", "log": ""}
        started = time.monotonic()
        try:
            data = self.typesetter.svg(
                tex, request.get("compiler", "latex"), str(request.get("format", ".dvi")), self._closed
            )
        except TexFailure as e:
            return {"error": str(e), "log": e.log}
        except MissingTool as e:
            return {"error": str(e), "missing": e.tool}
        except ValueError as e:
            return {"error": str(e), "log": ""}
        except Exception as e:  # the service must answer, whatever happened here
            log.exception("%s: typesetting failed", self.name)
            return {"error": f"watcher could not typeset the document ({type(e).__name__}: {e})", "log": ""}
        log.debug("%s: typeset a document in %.3f s", self.name, time.monotonic() - started)
        return {"svg": data.decode("utf-8", "replace")}


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def _receive(sock: socket.socket, cap: int) -> Any:
    """One message, or None at the end of the stream.

    Raises:
        ValueError: a message over `cap` bytes, or not JSON (the service ends for that job).
    """
    header = _exactly(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > cap:
        raise ValueError(f"a message of {size} bytes")
    body = _exactly(sock, size)
    if body is None:
        return None
    return json.loads(body)


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        data = sock.recv(size - len(chunks))
        if not data:
            return None
        chunks += data
    return bytes(chunks)
