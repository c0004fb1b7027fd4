"""The hostile-scene suite: every row of the threat table (threats.md) as a test.

Scene rows run through `render_job`, with the static policy on and off. The scenes reach
what the policy forbids (signal, socket, os.fork, os.kill...) through a built
`__import__` and `getattr`, so the policy lets them through either way: what is tested is
the runtime layers. After every row: the outcome in the table, no process of the job
left (`job_processes`), the job directory gone, and the next job renders. Inbox and
crash rows run through the real daemon. Rows already covered elsewhere are referenced;
`test_every_row_has_a_test` checks that each reference still exists.

A row that needs a sandbox layer this host lacks is skipped, naming the layer and why it
is missing (`watcher.sandbox.detect()`).

Row -> test ([p] = run with the policy on and off; "daemon:"/"layout:" = tests/test_daemon.py,
tests/test_layout.py, without their `test_` prefix):

  1 loop in construct            test_scene_row[r01-loop] [p]
  2 loop at module level         test_scene_row[r02-module_loop] [p]
  3 one long C call              test_scene_row[r03-long_c_call] [p]
  4 SIG_IGN, alarm(0), catch all test_scene_row[r04-sigalrm_ignored|alarm_cancelled|catch_base_exception] [p]
  5 sleep(10**6)                 test_scene_row[r05-sleep] [p]
  6 fork bomb, thread bomb       test_scene_row[r06-fork_bomb|thread_bomb] [p];
                                 test_r06_a_fork_bomb_does_not_starve_a_concurrent_render
  7 fork, setsid(), sleep        test_scene_row[r07-setsid_daemon] [p]
  8 unbounded allocation         test_scene_row[r08-memory] [p]
  9 stdout/stderr flood          test_r09_an_output_flood_is_capped_and_the_parent_stays_flat [p]
 10 huge file                    test_scene_row[r10-huge_file] [p]
 11 writes outside the job       test_r11_writes_outside_the_job_land_nowhere [p]
 12 reads secrets                test_r12_files_outside_the_job_cannot_be_read [p]
 13 LaTeX /etc/passwd, image    test_r13_latex_and_images_cannot_read_outside_the_job [p]
 14 network                      test_r14_no_network [p]
 15 kills parent, group, all     test_scene_row[r15-kill_parent] [p]
 16 sys.exit(0), os._exit(0)     test_scene_row[r16-sys_exit|os_exit] [p]
 17 fake .mp4                    test_scene_row[r17-fake_mp4] [p]
 18 C recursion                  test_scene_row[r18-c_recursion] [p]
 19 LaTeX loop                   test_scene_row[r19-latex_stack|latex_loop] [p]
 20 environment secrets          test_r20_the_environment_holds_no_secrets [p]
 21 symlink to /etc/shadow       daemon:bad_inbox_entries_are_moved_aside_and_never_followed
 22 FIFO, device, directory      the same; layout:a_fifo_is_moved_aside_without_blocking;
                                 test_r22_r24_r25_bad_inbox_files_through_the_daemon (device)
 23 hard link                    daemon:bad_inbox_entries_are_moved_aside_and_never_followed
 24 non-UTF-8, NUL, BOM          test_r22_r24_r25_bad_inbox_files_through_the_daemon
 25 50 MB, 10 MB line, nesting   test_r22_r24_r25_bad_inbox_files_through_the_daemon
 26 still being written          daemon:every_way_of_dropping_a_file_is_noticed_once (slow.py)
 27 the same name twice          daemon:the_same_name_twice_keeps_both
 28 SIGKILL at claim/render/pub. layout:a_crash_between_any_two_steps_leaves_every_input_in_exactly_one_place;
                                 daemon:sigkill_during_a_render_then_restart_files_it_once
 29 disk full                    test_r29_disk_full_keeps_the_input
 30 crashes the renderer         test_r30_poison_after_max_attempts_through_the_daemon
 31, 32, 35, 36 (the LaTeX cache and scale-out rows: not built yet)
 33 host paths in a message      test_r33_host_paths_in_messages_are_shown_in_the_users_terms [p]
 34 1,000 Scene classes          test_r34_a_thousand_scenes_are_refused_before_any_render [p]
 37 out/ swapped for a link      test_r37_an_output_folder_swapped_for_a_link_is_not_followed [p];
                                 test_r37_r38_r39_hostile_job_directories_through_the_daemon
 38 result.json FIFO, link, ...  test_scene_row[r38-result_*|video_fifo] [p]; the daemon test above
 39 deep tree, chmod 000, files  test_scene_row[r39-deep_tree] [p]; the daemon test above (restart);
                                 test_jobfs (remove_tree, discard, a starting daemon)
 40 session keyring              test_r40_the_session_keyring_is_fresh_and_empty [p]
 41 a layer that cannot apply    test_r41_no_render_as_root_when_the_user_layer_cannot_apply
 42 300 MB exception message     test_r42_a_huge_message_makes_a_small_record_and_the_parent_stays_flat [p];
                                 test_errors, test_report (caps)
 43 SIGALRM swallowed            test_scene_row[r43-alarm_in_finaliser] [p]
 44 rewrites a published video   test_r44_published_videos_do_not_belong_to_the_render_user
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import indent

import pytest

import watcher
from watcher import pool, sandbox
from watcher.config import Sandbox, load_config
from watcher.pipeline import render_job

from .conftest import job_processes
from .daemon_helpers import DaemonProc, pool_warmed_up, scene, wait_for

pytestmark = pytest.mark.usefixtures("remove_tmp_path")  # scenes here build trees too deep for pytest

TIMEOUT, GRACE = 2, 1
# render.timeout for the scenes that end by themselves: a fresh interpreter imports Manim
# inside it, and a render or a LaTeX run can take seconds on a busy machine.
ROOMY = 60
NORMAL = scene(0.3).encode()

# What the policy forbids by name, reached without naming it.
PRELUDE = """\
import json, os, sys, threading, time
from manim import *

_imp = getattr(sys.modules["built" + "ins"], "__imp" + "ort__")
signal, socket, subprocess = (_imp(m) for m in ("sig" + "nal", "soc" + "ket", "subpro" + "cess"))
fork, setsid, kill, killpg = (getattr(os, n) for n in ("fo" + "rk", "set" + "sid", "ki" + "ll", "ki" + "llpg"))


def attempt(step):
    try:
        step()
        return "ok"
    except Exception as e:
        return type(e).__name__


def report(**found):
    raise RuntimeError(json.dumps(found))
"""


def hostile(body: str, module: str = "", methods: str = "") -> str:
    """A scene: the prelude, `module` code, then `body` as construct() (plus other `methods`)."""
    construct = f"    def construct(self):\n{indent(body, ' ' * 8)}\n"
    return f"{PRELUDE}\n{module}\n\nclass GeneratedAnimation(Scene):\n{indent(methods, ' ' * 4)}\n{construct}"


@pytest.fixture(scope="module")
def layers() -> sandbox.Layers:
    return sandbox.detect()


def need(layers: sandbox.Layers, *names: str) -> None:
    for name in names:
        layer = getattr(layers, name)
        if not layer.available:
            pytest.skip(f"needs the {name} sandbox layer, unavailable here: {layer.reason}")


@pytest.fixture(params=[True, False], ids=["policy_on", "policy_off"])
def policy(request: pytest.FixtureRequest) -> bool:
    return request.param


@dataclass
class Outcome:
    ok: bool
    record: watcher.ErrorRecord | None
    elapsed: float

    def found(self) -> dict:
        """What a scene `report()`ed."""
        assert self.record is not None and self.record.type == "RuntimeError", self.record
        return json.loads(self.record.message)


def render(work: Path, source: str, policy: bool, *overrides: str, timeout: float = ROOMY) -> Outcome:
    """Render a hostile scene, then check it left nothing behind and that the next job renders.

    `timeout` is render.timeout: TIMEOUT for the rows about being stopped; the others end
    by themselves, and must not be cut short by a busy machine (a row's `overrides` win).
    """
    settings = load_config(
        None,
        [f"folders.work={work}", f"validation.enabled={policy}", f"render.timeout={timeout}", f"render.grace={GRACE}"]
        + list(overrides),
    )
    sandbox.expected_layers(settings)  # the host check, once per settings: not part of the time measured
    if settings.render.warm_workers:  # nor is a warm worker's import of Manim, which no timeout covers
        workers = pool.get_pool()
        workers.prewarm(1)
        wait_for(lambda: pool_warmed_up(workers), 120, "the warm workers to import Manim")
    started = time.monotonic()
    with render_job(source.encode(), "hostile.py", settings) as result:
        outcome = Outcome(result.ok, result.record, time.monotonic() - started)
    assert_no_survivors(work, outcome.record)
    assert not any(work.iterdir()), "the job directory was left behind"
    normal = load_config(None, [f"folders.work={work}", f"validation.enabled={policy}"])
    with render_job(NORMAL, "next.py", normal) as result:
        assert result.ok, result.record and result.record.to_json()
    return outcome


def assert_no_survivors(work: Path, record: watcher.ErrorRecord | None) -> None:
    """No process of the job is left.

    After a wall-clock kill, allow some seconds: the daemon kills and reaps the job's relay, and
    when the job's own process has left the relay's process group it dies through the
    relay's death, a few milliseconds later (render.supervise does not wait for that yet).
    """
    killed = record is not None and record.message.startswith("stopped after")
    if killed:
        wait_for(lambda: job_processes(work) == [], 10, "the killed job's processes to die")
    assert job_processes(work) == [], "a process of the job outlived it"


@dataclass
class Row:
    row: int
    name: str
    body: str
    expect: dict[str, str] = field(default_factory=dict)  # empty: the scene renders (harmless after all)
    module: str = ""
    methods: str = ""
    config: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()


LOOP = "while True:\n    pass"
PLAY = "self.play(FadeIn(Square()), run_time=0.3)"
TIMEOUT_RECORD = {"phase": "timeout", "type": "RenderTimeout"}
UNSAFE = {"phase": "internal", "type": "UnsafeJobOutput"}

ROWS = [
    Row(1, "loop", LOOP, TIMEOUT_RECORD),
    Row(2, "module_loop", PLAY, TIMEOUT_RECORD, module=LOOP),
    Row(3, "long_c_call", "sum(range(10**12))", TIMEOUT_RECORD),
    Row(4, "sigalrm_ignored", f"signal.signal(signal.SIGALRM, signal.SIG_IGN)\n{LOOP}", TIMEOUT_RECORD),
    Row(4, "alarm_cancelled", f"signal.alarm(0)\n{LOOP}", TIMEOUT_RECORD),
    Row(
        4,
        "catch_base_exception",
        f"while True:\n    try:\n{indent(LOOP, ' ' * 8)}\n    except BaseException:\n        pass",
        TIMEOUT_RECORD,
    ),
    Row(5, "sleep", "time.sleep(10**6)", TIMEOUT_RECORD),
    # Forking a process that imported Manim takes milliseconds: a lower limit and a longer
    # timeout make sure the limit, not the clock, is what stops these.
    Row(
        6,
        "fork_bomb",
        "while True:\n    fork()",
        {"phase": "resource", "limit": "processes"},
        config=("sandbox.max_processes=64", "render.timeout=15"),
        needs=("processes",),
    ),
    Row(
        6,
        "thread_bomb",
        "while True:\n    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()",
        {"phase": "resource", "limit": "processes"},
        config=("sandbox.max_processes=64", "render.timeout=15"),
        needs=("processes",),
    ),
    # A daemon that tries to outlive the job; the job itself finishes normally.
    Row(7, "setsid_daemon", f"if fork() == 0:\n    setsid()\n    time.sleep(300)\n{PLAY}", needs=("pid",)),
    # The job's own process leaves the daemon's process group: the relay's death must end it.
    Row(7, "setsid_then_loop", f"setsid()\n{LOOP}", TIMEOUT_RECORD, needs=("pid",)),
    Row(
        8,
        "memory",
        "hog = [bytearray(10**8) for _ in range(100)]",
        {"phase": "resource", "limit": "memory"},
        config=("render.memory_limit_mb=1024",),
    ),
    Row(
        10,
        "huge_file",
        "with open('big.bin', 'wb') as f:\n    f.write(bytes(64 * 2**20))",
        {"phase": "resource", "limit": "file size"},
        config=("render.max_output_mb=16",),
    ),
    # getppid() is 0 for a PID namespace's PID 1: kill(0) is its own group, where the relay
    # (root) refuses it; kill(-1) finds no one else. The daemon never is in reach.
    Row(
        15,
        "kill_parent",
        "for f in (lambda: kill(os.getppid(), 9), lambda: killpg(os.getpgid(0), 9), lambda: kill(-1, 9)):\n"
        f"    attempt(f)\n{PLAY}",
        needs=("pid", "user"),
    ),
    Row(16, "sys_exit", "sys.exit(0)", {"phase": "render", "type": "SystemExit"}),
    Row(16, "os_exit", "os._exit(0)", {"phase": "render", "type": "NoVideo"}),
    # Claims success with a file that only looks like the video.
    Row(
        17,
        "fake_mp4",
        "pass",
        {"phase": "render", "type": "InvalidVideo"},
        methods="def render(self, preview=False):\n    path = self.renderer.file_writer.movie_file_path\n"
        "    path.parent.mkdir(parents=True, exist_ok=True)\n    path.write_bytes(b'not really an mp4' * 100)",
    ),
    Row(
        18,
        "c_recursion",
        "nested = []\nfor _ in range(10**6):\n    nested = [nested]\nrepr(nested)",
        {"phase": "render", "signal": "SIGSEGV"},
        module="sys.setrecursionlimit(10**8)",
        config=("render.timeout=20",),
    ),
    # The table's own loop exhausts TeX's input stack at once; \loop\iftrue\repeat really loops.
    Row(19, "latex_stack", r"self.add(Tex(r'\def\x{\x x}\x'))", {"phase": "render", "type": "LaTeXError"}),
    Row(19, "latex_loop", r"self.add(Tex(r'\loop\iftrue\repeat'))", TIMEOUT_RECORD),
    # The job directory is hostile too: what the daemon reads there is never followed,
    # never blocks, never read without bound. The scene leaves an entry and exits at once.
    *(
        Row(38, name, f"{make}\ngetattr(os, '_' + 'exit')(0)", UNSAFE)
        for name, make in (
            ("result_fifo", "os.mkfifo('result.json')"),
            ("result_dev_zero", "os.symlink('/dev/zero', 'result.json')"),
            ("result_link_loop", "os.symlink('result.json', 'result.json')"),
            ("result_directory", "os.mkdir('result.json')"),
            ("result_hard_link", "os.link('job.json', 'result.json')"),
            ("result_huge", "open('result.json', 'w').write('{\"ok\": false, \"x\": \"' + 'A' * 2**21 + '\"}')"),
            ("result_not_a_result", "open('result.json', 'w').write(json.dumps({'ok': 'yes', 'videos': [123]}))"),
            ("result_bad_phase", "open('result.json', 'w').write(json.dumps({'ok': False, 'record': {'phase': 1}}))"),
        )
    ),
    Row(
        38,
        "video_fifo",
        "os.makedirs('out')\nos.mkfifo('out/video-1.mp4')\n"
        "open('result.json', 'w').write(json.dumps({'ok': True, 'videos': ['/etc/shadow']}))\n"
        "getattr(os, '_' + 'exit')(0)",
        {"phase": "render", "type": "InvalidVideo"},
    ),
    # Thousands of levels, locked directories, many files: removed, whatever the depth.
    Row(
        39,
        "deep_tree",
        "top = os.getcwd()\nfor _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')\nos.chdir(top)\n"
        "os.makedirs('locked/inner')\nopen('locked/inner/f', 'w').close()\n"
        "os.chmod('locked/inner', 0)\nos.chmod('locked', 0)\n"
        f"for i in range(10000):\n    open(f'many-{{i}}', 'w').close()\n{PLAY}",
        config=("render.timeout=30",),
    ),
    # A SceneTimeout raised inside a finaliser is swallowed ("Exception ignored in"); the
    # timer repeats, so the next one stops the scene, and the record blames the timeout.
    Row(
        43,
        "alarm_in_finaliser",
        f"Swallow()\n{LOOP}",
        TIMEOUT_RECORD,
        module=f"class Swallow:\n    def __del__(self):\n        time.sleep({TIMEOUT} + 0.2)",
        config=("render.grace=3",),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"r{r.row:02}-{r.name}" for r in ROWS])
def test_scene_row(row: Row, policy: bool, work_dir: Path, layers: sandbox.Layers):
    need(layers, *row.needs)
    timeout = TIMEOUT if row.expect.get("phase") == "timeout" else ROOMY
    out = render(work_dir, hostile(row.body, row.module, row.methods), policy, *row.config, timeout=timeout)
    if not row.expect:
        assert out.ok, out.record and out.record.to_json()
        return
    assert not out.ok
    rec = out.record
    for key, value in row.expect.items():
        assert getattr(rec, key) == value, f"{key}: {rec.to_json()}"
    if rec.phase == "timeout":
        # Stopped at timeout + grace (these scenes never end by themselves); the rest is room
        # for a busy machine.
        assert out.elapsed < TIMEOUT + GRACE + 20
    if row.name == "alarm_in_finaliser":  # stopped by the repeated alarm, in the loop: not by the parent's kill
        assert not rec.message.startswith("stopped after"), rec.to_json()
        marked = next(line for line in rec.excerpt.splitlines() if line.startswith(">"))
        assert "while True" in marked or "pass" in marked, rec.excerpt


@contextlib.contextmanager
def rss_samples() -> Iterator[list[int]]:
    """This process's resident memory (kB), sampled every 10 ms while the block runs."""
    rss: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            with open("/proc/self/status") as f:
                rss.append(next(int(line.split()[1]) for line in f if line.startswith("VmRSS")))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield rss
    finally:
        done.set()
        sampler.join()


def test_r09_an_output_flood_is_capped_and_the_parent_stays_flat(policy: bool, work_dir: Path):
    with rss_samples() as rss:
        body = "for _ in range(300):\n    print('x' * 10**6, flush=True)\n1 / 0"
        out = render(work_dir, hostile(body), policy, "render.max_log_bytes=4096", "render.timeout=30")
    assert (out.record.phase, out.record.type) == ("render", "ZeroDivisionError")
    assert len(out.record.stderr_tail) <= 4096
    assert max(rss) - rss[0] < 64 * 1024, f"the parent grew by {(max(rss) - rss[0]) // 1024} MB for 300 MB of output"


def test_r11_writes_outside_the_job_land_nowhere(policy: bool, tmp_path: Path, layers: sandbox.Layers):
    need(layers, "mount")
    tag = uuid.uuid4().hex[:8]
    folders = {name: tmp_path / name for name in ("inbox", "processing", "done", "failed")}
    for folder in folders.values():
        folder.mkdir()
    project = Path(watcher.__file__).resolve().parent.parent
    targets = [folders["done"] / f"evil-{tag}.mp4", folders["failed"] / f"evil-{tag}.error.json"]
    targets += [folders["inbox"] / f"evil-{tag}.py", folders["processing"] / f"evil-{tag}"]
    targets += [project / f"evil-{tag}.txt", tmp_path / "work" / f"evil-{tag}", Path(f"/tmp/evil-{tag}")]
    body = f"report(**{{p: attempt(lambda p=p: open(p, 'w').write('x')) for p in {[str(t) for t in targets]!r}}})"
    try:
        out = render(tmp_path / "work", hostile(body), policy)
        found = out.found()
        leaked = [str(t) for t in targets if t.exists()]
    finally:
        for t in targets:
            with contextlib.suppress(FileNotFoundError):
                t.unlink()
    assert leaked == [], found
    # Writes anywhere but the job fail; /tmp is the job's own small tmpfs, gone with it.
    assert all(result != "ok" for path, result in found.items() if not path.startswith("/tmp/evil-")), found


def test_r12_files_outside_the_job_cannot_be_read(
    policy: bool, tmp_path: Path, layers: sandbox.Layers, monkeypatch: pytest.MonkeyPatch
):
    need(layers, "mount", "pid", "user")
    canary = f"canary-{uuid.uuid4().hex}"
    secret = tmp_path / "secret.txt"
    secret.write_text(canary)
    secret.chmod(0o644)  # readable by anyone: only not being visible protects it
    monkeypatch.setenv("WATCHER_TEST_TOKEN", canary)  # the "daemon" is this process
    paths = ["/etc/shadow", str(secret), f"/proc/{os.getpid()}/environ", "/root/.ssh/id_rsa", "/root/.bash_history"]
    body = (
        f"found = {{p: attempt(lambda p=p: open(p, 'rb').read()) for p in {paths!r}}}\n"
        "found['root_home'] = sorted(os.listdir('/root')) if os.path.isdir('/root') else []\n"
        "found['processes'] = sorted(p for p in os.listdir('/proc') if p.isdigit())\n"
        "report(**found)"
    )
    out = render(tmp_path / "work", hostile(body), policy)
    found = out.found()
    assert found["/etc/shadow"] == "PermissionError"  # visible (it is in /etc), but not to the render user
    assert found[str(secret)] == "FileNotFoundError"
    assert found[f"/proc/{os.getpid()}/environ"] == "FileNotFoundError"
    assert found["/root/.ssh/id_rsa"] == found["/root/.bash_history"] == "FileNotFoundError"
    # /root shows at most the way to a Python installed under it (pyenv), nothing else.
    on_the_way = {Path(p).parts[2] for p in sandbox._python_paths() if p.startswith("/root/")}
    assert set(found["root_home"]) <= on_the_way, found["root_home"]
    assert found["processes"] == ["1"], "only the job's own process is visible"
    assert canary not in out.record.to_json()


def test_r13_latex_and_images_cannot_read_outside_the_job(policy: bool, tmp_path: Path, layers: sandbox.Layers):
    from PIL import Image

    work = tmp_path / "work"
    # LaTeX: kpathsea's paranoid openin_any refuses absolute paths, sandbox or not.
    out = render(work, hostile(r"self.add(Tex(r'\input{/etc/passwd}'))"), policy)
    assert (out.record.phase, out.record.type) == ("render", "LaTeXError"), out.record.to_json()
    assert "root:x:0" not in out.record.to_json()

    need(layers, "mount")
    image = tmp_path / "outside.png"
    Image.new("RGB", (8, 8), "red").save(image)
    out = render(work, hostile(f"self.add(ImageMobject({str(image)!r}))\n{PLAY}"), policy)
    assert not out.ok and out.record.phase == "render", "an image outside the job was readable"


def test_r14_no_network(policy: bool, work_dir: Path, layers: sandbox.Layers):
    need(layers, "network")
    name = f"\0watcher-hostile-{uuid.uuid4().hex}"
    with socket.create_server(("127.0.0.1", 0)) as tcp, socket.socket(socket.AF_UNIX) as unix:
        unix.bind(name)
        unix.listen()
        port = tcp.getsockname()[1]
        body = (
            "report(\n"
            f"    local=attempt(lambda: socket.create_connection(('127.0.0.1', {port}), timeout=1)),\n"
            f"    abstract_unix=attempt(lambda: socket.socket(socket.AF_UNIX).connect({name!r})),\n"
            "    internet=attempt(lambda: socket.create_connection(('1.1.1.1', 53), timeout=1)),\n"
            "    dns=attempt(lambda: socket.getaddrinfo('example.com', 80)),\n"
            ")"
        )
        found = render(work_dir, hostile(body), policy).found()
    assert "ok" not in found.values(), found


def test_r20_the_environment_holds_no_secrets(policy: bool, work_dir: Path, monkeypatch: pytest.MonkeyPatch):
    canary = f"canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", canary)
    monkeypatch.setenv("PYTHONPATH", "/injected")
    body = (
        "own = open('/proc/self/environ', 'rb').read().decode()\n"
        "first = attempt(lambda: open('/proc/1/environ', 'rb').read())\n"
        "report(keys=sorted(os.environ), own=own, first=first)"
    )
    out = render(work_dir, hostile(body), policy)
    assert canary not in out.record.to_json() and "/injected" not in out.record.to_json()
    allowed = {*sandbox.ENV_ALLOW, *sandbox.child_environment(work_dir)}
    assert set(out.found()["keys"]) <= allowed


@pytest.mark.slow
def test_r06_a_fork_bomb_does_not_starve_a_concurrent_render(work_dir: Path, layers: sandbox.Layers):
    # RLIMIT_NPROC counts per user; each job's own user namespace makes the count per job.
    need(layers, "processes")
    overrides = ["validation.enabled=false", "render.timeout=15", "sandbox.max_processes=64"]
    settings = load_config(None, [f"folders.work={work_dir}", *overrides])
    results = {}

    def run(name: str, source: bytes) -> None:
        with render_job(source, f"{name}.py", settings) as result:
            results[name] = result.ok, result.record

    bomb = threading.Thread(target=run, args=("bomb", hostile("while True:\n    fork()").encode()))
    bomb.start()
    time.sleep(1.0)  # the bomb is at (or near) its limit by now
    run("normal", scene(0.5).encode())
    bomb.join()
    assert results["normal"][0], results["normal"][1] and results["normal"][1].to_json()
    assert results["bomb"][1].limit == "processes"
    assert job_processes(work_dir) == []


# -- the job directory is hostile too (rows 37-44) -----------------------------------------

SWAP_OUT = """def render(self, preview=False):
    super().render(preview)
    out = self.renderer.file_writer.movie_file_path.parent
    os.rename(out, out.parent / 'out-moved')
    os.symlink({target!r}, out)
"""


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_r37_an_output_folder_swapped_for_a_link_is_not_followed(policy: bool, tmp_path: Path, kind: str):
    # The daemon is root and the link points at host files named as the job's outputs are.
    work, host = tmp_path / "work", tmp_path / "done"
    host.mkdir()
    victim = host / "video-1.mp4"
    victim.write_bytes(b"a host file")
    victim.chmod(0o600)
    # out/ is work/job-*/<child dir>/out: three levels up is tmp_path.
    target = str(host) if kind == "absolute" else "../../../done"
    out = render(work, hostile(PLAY, methods=SWAP_OUT.format(target=target)), policy)
    assert not out.ok and (out.record.phase, out.record.type) == ("render", "InvalidVideo"), out.record.to_json()
    assert "not followed" in out.record.message
    assert victim.read_bytes() == b"a host file" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert [p.name for p in host.iterdir()] == ["video-1.mp4"]


def test_r33_host_paths_in_messages_are_shown_in_the_users_terms(policy: bool, work_dir: Path):
    body = "raise RuntimeError(f'{os.getcwd()}|{os.path.abspath(\"hostile.py\")}|{sys.prefix}|{sys.executable}')"
    record = render(work_dir, hostile(body), policy).record
    assert record.message.split("|") == ["<job>", "hostile.py", "<python>", "<python>/bin/python"], record.message
    assert str(work_dir) not in record.to_json() and sys.prefix not in record.to_json()


def test_r34_a_thousand_scenes_are_refused_before_any_render(policy: bool, work_dir: Path):
    classes = "".join(
        f"\n\nclass S{i}(Scene):\n    def construct(self):\n        self.wait(0.1)\n" for i in range(1000)
    )
    settings = load_config(None, [f"folders.work={work_dir}", f"validation.enabled={policy}", "render.scene=all"])
    with render_job(f"from manim import *{classes}".encode(), "many.py", settings) as result:
        assert (result.record.phase, result.record.type) == ("validate", "InvalidScene"), result.record.to_json()
        assert "1000 scenes to render, over the limit of 20" in result.record.message
    assert not work_dir.exists() or not any(work_dir.iterdir())  # no job directory: no render started


def test_r40_the_session_keyring_is_fresh_and_empty(policy: bool, tmp_path: Path):
    # This process plays the daemon: a key that only its session keyring's possessor may read.
    import ctypes
    import platform

    number = sandbox.SYS_KEYCTL.get(platform.machine())
    if number is None:
        pytest.skip(f"no keyctl system call number for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(number, 1, None) < 0:  # KEYCTL_JOIN_SESSION_KEYRING: a new one for this test
        pytest.skip(f"no kernel keyrings here: {os.strerror(ctypes.get_errno())}")
    add_key = {"x86_64": 248, "aarch64": 217}[platform.machine()]
    secret = uuid.uuid4().hex.encode()
    serial = libc.syscall(add_key, b"user", b"watcher-test", secret, len(secret), -3)  # -3: the session keyring
    assert serial > 0, os.strerror(ctypes.get_errno())
    assert libc.syscall(number, 5, serial, 0x3F000000) == 0  # KEYCTL_SETPERM: possessor only
    body = (
        "ctypes = _imp('ctypes')\nlibc = ctypes.CDLL(None, use_errno=True)\nbuf = ctypes.create_string_buffer(64)\n"
        f"n = libc.syscall({number}, 11, {serial}, buf, 64)\n"  # KEYCTL_READ
        f"found = libc.syscall({number}, 10, -3, b'user', b'watcher-test', 0)\n"  # KEYCTL_SEARCH
        "report(read=buf.raw[:max(n, 0)].decode(errors='replace'), search=found)"
    )
    # A fresh interpreter per job: a warm worker started earlier holds an older session keyring.
    found = render(tmp_path / "work", hostile(body), policy, "render.warm_workers=false").found()
    assert found == {"read": "", "search": -1}


def test_r41_no_render_as_root_when_the_user_layer_cannot_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if os.geteuid() != 0:
        pytest.skip("about a daemon that is root")
    # visible_paths covering the work folder defeats the mount layer; the work folder (under
    # pytest's 0700 temp folder) is out of the render user's reach: the user layer fails too.
    work = tmp_path / "work"
    canary = tmp_path / "root-owned.txt"
    canary.write_text("untouched")
    settings = load_config(None, [f"folders.work={work}", f"sandbox.visible_paths=[{tmp_path}]"])
    layers = sandbox.detect(settings)  # probed in the configured work folder, as a job is
    assert not layers.mount.available and not layers.user.available, layers.summary()
    body = f"open({str(canary)!r}, 'a').write('appended')\nreport(uid=os.getuid())"
    with render_job(hostile(body).encode(), "root.py", settings) as result:
        assert (result.record.phase, result.record.type) == ("environment", "SandboxError"), result.record.to_json()
        assert "never run as root" in result.record.message
    assert canary.read_text() == "untouched"
    assert job_processes(work) == [] and not any(work.iterdir())

    # A layer the host check found active that a job cannot get: that job fails, it never
    # runs with less. (The check's answer is replaced here; the child's enforcement is real.)
    monkeypatch.setattr(sandbox, "expected_layers", lambda settings: ["mount"])
    loose = load_config(None, [f"folders.work={work}", f"sandbox.visible_paths=[{tmp_path}]", "sandbox.user=root"])
    with render_job(hostile("report(uid=os.getuid())").encode(), "lost.py", loose) as result:
        assert (result.record.phase, result.record.type) == ("environment", "SandboxError"), result.record.to_json()
        assert "mount" in result.record.message and "could not be applied" in result.record.message


def test_r42_a_huge_message_makes_a_small_record_and_the_parent_stays_flat(policy: bool, work_dir: Path):
    with rss_samples() as rss:
        source = hostile("raise RuntimeError('HEAD' + 'A' * 300_000_000 + 'TAIL')")
        out = render(work_dir, source, policy, "render.timeout=30")
    record = out.record
    assert (record.phase, record.type) == ("render", "RuntimeError")
    assert record.message.startswith("HEAD") and record.message.endswith("TAIL") and "characters cut" in record.message
    assert len(record.to_json()) < 100_000
    assert max(rss) - rss[0] < 64 * 1024, f"the parent grew by {(max(rss) - rss[0]) // 1024} MB"


def test_r44_published_videos_do_not_belong_to_the_render_user(work_dir: Path, layers: sandbox.Layers):
    settings = load_config(None, [f"folders.work={work_dir}"])
    with render_job(NORMAL, "owned.py", settings) as result:
        assert result.ok, result.record and result.record.to_json()
        st = result.videos[0].stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode), st.st_nlink) == (os.geteuid(), 0o644, 1)
        assert result.workdir not in result.videos[0].parents  # a copy, out of the job's directory


def test_a_file_name_of_255_bytes_renders(work_dir: Path):
    name = "n" * 252 + ".py"
    settings = load_config(None, [f"folders.work={work_dir}"])
    with render_job(NORMAL, name, settings) as result:
        assert result.ok, result.record and result.record.to_json()
        assert len(result.videos[0].name.encode()) <= 255


@pytest.mark.slow
def test_r37_r38_r39_hostile_job_directories_through_the_daemon(tmp_path: Path):
    # As root, every layer on: nothing a job leaves behind moves host files, hangs the
    # daemon or breaks its next start.
    d = DaemonProc(tmp_path / "w", {"validation": {"enabled": False}, "render": {"timeout": 20}})
    d.done.mkdir()
    (d.done / "hello.py").write_text(scene())
    (d.done / "hello.mp4").write_bytes(b"an earlier video")
    swap = hostile(PLAY, methods=SWAP_OUT.format(target="../../../done"))
    fifo = hostile("os.mkfifo('result.json')\ngetattr(os, '_' + 'exit')(0)")
    deep = hostile("for _ in range(2000):\n    os.mkdir('d')\n    os.chdir('d')\nos.chmod('.', 0)\ntime.sleep(300)")
    with d:
        for name, source in (("swap.py", swap), ("fifo.py", fifo), ("deep.py", deep)):
            d.drop(name, source)
        (d.inbox / ("n" * 252 + ".py")).write_text(scene())  # 255 bytes: no room for drop()'s temp name
        wait_for(lambda: "deep.py: rendering" in d.log() and len(list(d.failed.glob("*.py"))) == 2, 60, "two failures")
        wait_for(lambda: list(d.done.glob("n*.mp4")), 60, "the long name")
        d.kill()  # in the middle of deep.py: its tree stays in work/ for the next start
    wait_for(lambda: job_processes(d.root / "work") == [], 10, "the orphaned render to die")
    with d:
        wait_for(lambda: (d.failed / "deep.py").exists() or (d.done / "deep.py").exists(), 60, "deep.py to be filed")
        d.drop("next.py", scene())
        wait_for(lambda: (d.done / "next.mp4").exists(), 60, "the next job")
    records = {p.name.split(".")[0]: json.loads(p.read_text()) for p in d.failed.glob("*.error.json")}
    assert (records["swap"]["phase"], records["swap"]["type"]) == ("render", "InvalidVideo")
    assert (records["fifo"]["phase"], records["fifo"]["type"]) == ("internal", "UnsafeJobOutput")
    assert (d.done / "hello.mp4").read_bytes() == b"an earlier video"
    assert [p.name for p in d.root.joinpath("work").iterdir()] == [], "the orphaned job directory is gone"
    for video in d.done.glob("*.mp4"):
        assert video.stat().st_uid == os.geteuid()


# -- the sandbox itself ---------------------------------------------------------------------


def test_detect_names_every_layer_with_a_reason(layers: sandbox.Layers):
    assert [name for name, _ in layers.items()] == list(sandbox.SANDBOX_LAYERS)
    assert all(layer.reason for _, layer in layers.items())
    if os.geteuid() == 0:  # as in CI: scripts/setup.sh created the render user
        assert layers.missing(["pid", "network", "mount", "ipc"]) == [], layers.summary()


def test_warm_and_fresh_children_get_the_same_isolation(work_dir: Path, layers: sandbox.Layers):
    body = (
        "report(uid=os.getuid(), pid=os.getpid(), net=os.readlink('/proc/self/ns/net'),\n"
        "       mounts=sorted(line.split()[4] for line in open('/proc/self/mountinfo')))"
    )
    seen = {}
    for warm in ("true", "false"):
        out = render(work_dir, hostile(body), False, f"render.warm_workers={warm}")
        found = out.found()
        found["mounts"] = [m for m in found["mounts"] if "/job-" not in m]  # each job has its own directory
        found.pop("net")  # a new namespace each time
        seen[warm] = found
    assert seen["true"] == seen["false"]
    if layers.pid.available:
        assert seen["true"]["pid"] == 1


def test_strict_refuses_to_start_without_a_required_layer(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("the user layer is never available to a daemon that is not root")
    settings = load_config(None, ["sandbox.mode=strict", "sandbox.user=no-such-user", f"folders.work={tmp_path}"])
    with pytest.raises(sandbox.SandboxError) as info:
        sandbox.prepare(settings)
    message = str(info.value)
    assert "\n" not in message and "user" in message and "no-such-user" in message


def test_strict_fails_a_job_closed_when_a_layer_cannot_be_applied(work_dir: Path):
    if os.geteuid() != 0:
        pytest.skip("the user layer is never available to a daemon that is not root")
    settings = load_config(None, [f"folders.work={work_dir}", "sandbox.mode=strict", "sandbox.user=no-such-user"])
    with render_job(NORMAL, "strict.py", settings) as result:
        assert not result.ok
        assert (result.record.phase, result.record.type) == ("environment", "SandboxError"), result.record.to_json()
    assert job_processes(work_dir) == []


def test_off_warns_and_marks_every_record(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    config = tmp_path / "c.yaml"
    config.write_text(f"sandbox:\n  mode: off\nfolders:\n  work: {tmp_path / 'work'}\n")  # YAML's bare off
    settings = load_config(config)
    assert settings.sandbox.mode == "off"
    with caplog.at_level(logging.WARNING, logger="watcher.sandbox"):
        layers = sandbox.prepare(settings)
    assert "WITHOUT isolation" in caplog.text and layers.active == []
    with render_job(hostile("report(pid=os.getpid())").encode(), "off.py", settings) as result:
        assert result.record.settings["sandbox"] == "off"
        assert json.loads(result.record.message)["pid"] != 1  # no PID namespace


def test_auto_logs_the_layers_once_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger="watcher.sandbox"):
        sandbox.prepare(load_config(None, [f"folders.work={tmp_path}"]))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("sandbox (auto): active: ")


UNPRIVILEGED = """
import json, sys
from pathlib import Path
from watcher import sandbox
from watcher.config import load_config
from watcher.pipeline import render_job

settings = load_config(None, [f"folders.work={sys.argv[1]}", "validation.enabled=false"])
out = {"layers": sandbox.detect(settings).to_dict()}
with render_job(sys.argv[2].encode(), "probe.py", settings) as result:
    out["seen"] = json.loads(result.record.message)
with render_job(sys.argv[3].encode(), "normal.py", settings) as result:
    out["ok"] = result.ok
print(json.dumps(out))
"""


def test_a_daemon_that_is_not_root_still_isolates_its_renders(tmp_path: Path):
    # The other deployment: the daemon itself unprivileged. Its render children make a
    # user namespace of their own, which lets them create the others.
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        pytest.skip("needs root to switch users, and util-linux's unshare and setpriv")
    try:
        entry = pwd.getpwnam(Sandbox().user)
    except KeyError:
        pytest.skip("no render user to run the daemon as (scripts/setup.sh creates it)")
    home = Path(tempfile.mkdtemp(prefix="watcher-unprivileged-", dir="/tmp"))
    os.chown(home, entry.pw_uid, entry.pw_gid)
    # Python may live where that user cannot go (pyenv under /root): in a private mount
    # namespace, a tmpfs over the blocking directory leaves only the way to Python.
    setup = ""
    base = Path(sys.base_prefix)
    blocked = sandbox._unsearchable(base, entry)  # on the way to the interpreter's installation
    keep = None
    if blocked:
        rest = base.relative_to(blocked).parts
        if not rest:  # the installation's own folder: no mount below opens it
            shutil.rmtree(home, ignore_errors=True)
            pytest.skip(f"{entry.pw_name} cannot reach the Python installation {base}: it is not searchable for it")
        keep = Path(blocked) / rest[0]
    for path in [str(home), *sandbox._python_paths()]:  # what the mount below cannot open: the clone's own folders
        if keep is None or not Path(path).is_relative_to(keep):
            if unreachable := sandbox._unsearchable(Path(path), entry):
                shutil.rmtree(home, ignore_errors=True)
                pytest.skip(
                    f"{entry.pw_name} cannot reach {path}: {unreachable} is not searchable for it "
                    "(a clone in a folder only root may enter; `watcher doctor` warns about it)"
                )
    if blocked:
        setup = (
            f"hold=$(mktemp -d) && mount --bind {keep} $hold && mount -t tmpfs -o mode=755 tmpfs {blocked} && "
            f"mkdir {keep} && mount --bind $hold {keep} && "
        )
    probe = hostile("report(uid=os.getuid(), pid=os.getpid())")
    user = f"setpriv --reuid={entry.pw_uid} --regid={entry.pw_gid} --clear-groups env -i PATH=/usr/bin:/bin HOME={home}"
    script = f'{setup}exec {user} {sys.executable} -I -c "$0" "$@"'
    try:
        argv = [UNPRIVILEGED, str(home / "work"), probe, scene(0.3)]  # $0 "$@" of the script
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.splitlines()[-1])
        assert job_processes(home / "work") == []
    finally:
        shutil.rmtree(home, ignore_errors=True)
    layers = sandbox.Layers.from_dict(out["layers"])
    assert layers.missing(["pid", "network", "mount", "ipc", "processes"]) == [], layers.summary()
    assert not layers.user.available
    assert out["seen"] == {"uid": entry.pw_uid, "pid": 1} and out["ok"]


# -- inbox and crash rows, through the real daemon ----------------------------------------


def test_r22_r24_r25_bad_inbox_files_through_the_daemon(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    d = DaemonProc(tmp_path / "w", {"render": {"max_source_bytes": 20_000_000}})
    with d:
        os.mknod(d.inbox / "device.py", stat.S_IFCHR | 0o644, os.makedev(1, 3))  # like /dev/null
        (d.inbox / "latin1.py").write_bytes(scene().encode() + b"# caf\xe9\n")
        (d.inbox / "nul.py").write_bytes(scene().encode() + b"\0")
        (d.inbox / "bom.py").write_bytes(b"\xef\xbb\xbf" + scene().encode())
        (d.inbox / "long_line.py").write_bytes(scene().encode() + b"#" + b"x" * 10_000_000 + b"\n")
        (d.inbox / "nested.py").write_text(scene() + "x = " + "(" * 100_000 + ")" * 100_000 + "\n")
        (d.inbox / "huge.py").write_bytes(b"#" * 50_000_000)
        d.drop("after.py", scene())
        wait_for(lambda: d.settled(8), 120, "8 results")
        records = {p.name.split(".")[0]: json.loads(p.read_text()) for p in d.failed.glob("*.error.json")}
        assert sorted(p.name for p in d.done.glob("*.py")) == ["after.py", "bom.py", "long_line.py"], d.log()
        assert d.proc.poll() is None
    assert (records["device"]["phase"], records["device"]["type"]) == ("ingest", "NotARegularFile")
    assert records["latin1"]["type"] == "InvalidSource" and "offset" in records["latin1"]["message"]
    assert "NUL byte at offset" in records["nul"]["message"]
    assert (records["nested"]["phase"], records["nested"]["type"]) == ("validate", "SyntaxError")
    assert (records["huge"]["phase"], records["huge"]["type"]) == ("ingest", "TooLarge")


def _where(d: DaemonProc, name: str) -> list[str]:
    """Every folder that holds the source `name` (claims are directories in processing/)."""
    places = [key for key in ("inbox", "done", "failed") if (getattr(d, key) / name).exists()]
    places += ["processing" for p in d.processing.glob(f"*/{name}")]
    return places


@pytest.mark.slow
def test_r29_disk_full_keeps_the_input(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    fs = tmp_path / "fs"
    fs.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(fs)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        folders = {key: str(fs / key) for key in ("inbox", "processing", "done", "failed", "work")}
        d = DaemonProc(tmp_path / "d", {"folders": folders, "daemon": {"rescan_interval": 1}})
        d.inbox, d.processing, d.done, d.failed = (fs / key for key in ("inbox", "processing", "done", "failed"))
        d.inbox.mkdir()
        with d:
            # The render needs 4 MB in its job directory; 1 MB is left.
            staged = fs / "victim.py"
            staged.write_text(scene(body="open('pad.bin', 'wb').write(bytes(4 << 20)); self.wait(0.2)"))
            filler = fs / "filler"
            with open(filler, "wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(bytes(1 << 20))
                    f.flush()
            filler.write_bytes(bytes(filler.stat().st_size - (1 << 20)))
            os.rename(staged, d.inbox / "victim.py")  # a rename needs no space

            def failed_once() -> bool:
                assert len(_where(d, "victim.py")) == 1, _where(d, "victim.py")  # never lost, never doubled
                log = d.log()
                return any(s in log for s in ("victim.py: failed", "cannot file the result", "the file stays where"))

            wait_for(failed_once, 30, "the render to run out of space")
            assert d.proc.poll() is None and not list(d.done.glob("*.mp4"))
            filler.unlink()
            time.sleep(2)
            if _where(d, "victim.py") == ["processing"]:  # left for recovery: the next start retries it
                d.stop()
                d.start()
            wait_for(lambda: _where(d, "victim.py") in (["done"], ["failed"]), 60, "the input to be filed")
            if _where(d, "victim.py") == ["failed"]:
                record = json.loads((d.failed / "victim.error.json").read_text())
                assert (record["phase"], record["limit"]) == ("resource", "disk space"), record
            d.drop("next.py", scene())
            wait_for(lambda: (d.done / "next.mp4").exists(), 60, "the next job")
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=False)


@pytest.mark.slow
def test_r30_poison_after_max_attempts_through_the_daemon(tmp_path: Path):
    # With the sandbox, a scene cannot take the daemon down itself; the OOM killer can, in
    # the middle of its render. SIGKILL plays that part.
    d = DaemonProc(tmp_path / "w", {"daemon": {"max_attempts": 2}, "validation": {"enabled": False}})
    d.drop("crasher.py", scene(body="import time; time.sleep(60)"))
    for _ in range(2):
        d.start()
        wait_for(lambda: "crasher.py: rendering" in d.log(), 60, "the render to start")
        d.kill()
        wait_for(lambda: job_processes(tmp_path / "w" / "work") == [], 10, "the orphaned render to die")
    with d:
        wait_for(lambda: (d.failed / "crasher.error.json").exists(), 30, "the poison record")
        record = json.loads((d.failed / "crasher.error.json").read_text())
        assert (record["phase"], record["attempts"]) == ("poison", 2)
        d.drop("next.py", scene())
        wait_for(lambda: (d.done / "next.mp4").exists(), 60, "the next job")


# -- the table, row by row ------------------------------------------------------------------

COVERED_ELSEWHERE = {
    21: ["test_daemon.test_bad_inbox_entries_are_moved_aside_and_never_followed"],
    22: [
        "test_daemon.test_bad_inbox_entries_are_moved_aside_and_never_followed",
        "test_layout.test_a_fifo_is_moved_aside_without_blocking",
    ],
    23: [
        "test_daemon.test_bad_inbox_entries_are_moved_aside_and_never_followed",
        "test_layout.test_a_hard_link_is_rejected",
    ],
    26: ["test_daemon.test_every_way_of_dropping_a_file_is_noticed_once"],
    27: ["test_daemon.test_the_same_name_twice_keeps_both", "test_layout.test_the_same_name_dropped_twice_keeps_both"],
    28: [
        "test_daemon.test_sigkill_during_a_render_then_restart_files_it_once",
        "test_layout.test_a_crash_between_any_two_steps_leaves_every_input_in_exactly_one_place",
    ],
}
HERE = {
    9: "test_r09_an_output_flood_is_capped_and_the_parent_stays_flat",
    11: "test_r11_writes_outside_the_job_land_nowhere",
    12: "test_r12_files_outside_the_job_cannot_be_read",
    13: "test_r13_latex_and_images_cannot_read_outside_the_job",
    14: "test_r14_no_network",
    20: "test_r20_the_environment_holds_no_secrets",
    22: "test_r22_r24_r25_bad_inbox_files_through_the_daemon",
    24: "test_r22_r24_r25_bad_inbox_files_through_the_daemon",
    25: "test_r22_r24_r25_bad_inbox_files_through_the_daemon",
    29: "test_r29_disk_full_keeps_the_input",
    30: "test_r30_poison_after_max_attempts_through_the_daemon",
    33: "test_r33_host_paths_in_messages_are_shown_in_the_users_terms",
    34: "test_r34_a_thousand_scenes_are_refused_before_any_render",
    37: "test_r37_an_output_folder_swapped_for_a_link_is_not_followed",
    40: "test_r40_the_session_keyring_is_fresh_and_empty",
    41: "test_r41_no_render_as_root_when_the_user_layer_cannot_apply",
    42: "test_r42_a_huge_message_makes_a_small_record_and_the_parent_stays_flat",
    44: "test_r44_published_videos_do_not_belong_to_the_render_user",
}
ROWS_BUILT = set(range(1, 31)) | {33, 34} | set(range(37, 45))  # 31, 32, 35, 36: the cache and scale-out work


def test_every_row_has_a_test():
    covered = {row.row for row in ROWS} | set(HERE) | set(COVERED_ELSEWHERE)
    assert covered == ROWS_BUILT, sorted(ROWS_BUILT ^ covered)
    for name in HERE.values():
        assert callable(globals().get(name)), name
    for refs in COVERED_ELSEWHERE.values():
        for ref in refs:
            module, function = ref.split(".")
            assert hasattr(importlib.import_module(f"tests.{module}"), function), ref
