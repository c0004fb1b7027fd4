"""Benchmark: watcher against plain `manim` on the corpus in bench/scenes/, in one run.

    .venv/bin/python bench/run.py [--quick] [--workers N] [--keep DIR]

On the same machine, one after the other:
  (a) one `manim -ql` process per scene, in sequence;
  (b) `manim -ql` over the same scenes with `xargs -P N`;
  (c) `watcher render SCENES --workers N` (the CLI; warm workers);
  (d) the daemon (`watcher run`, N workers) fed the corpus by dropping it into its inbox,
      timed from the first drop until the last result is filed;
  (e) a repair-loop pass: (c) again on the corpus with one line changed in every scene,
      sharing (c)'s LaTeX cache (folders.cache);
  (f) (c) again on the same files, with the cache (c) and (e) left warm;
  (g) (c) with `executor: celery`: a local redis-server and a warm `watcher worker` with N
      processes, a cold cache (bench/celery_row.py); skipped without redis-server or celery.
(c), (e) and (f) print their LaTeX cache hit rate.
N is the number of CPUs unless --workers says otherwise. Then: the per-scene overhead of
watcher over rendering the same scene in one warm process (`scene.render()` after
Manim's import and one warm-up scene), with one job at a time so that the two compare;
the daemon's drop-to-render-start latency with a worker free (drop time against its
"render child ... started" debug line); its CPU use while idle (daemon and warm
workers, from /proc); and its resident memory after 10 and after 1,000 cheap jobs (9 in
10 fail in construct(), which still forks, supervises and files a record; 1 in 10 is a
tiny real render). Takes about 8 minutes on 2 CPUs; --quick (10 s of idle instead of
60, 200 jobs instead of 1,000) about 5.

Every run prints the CPU count and the versions, and saves its numbers in bench/results/.
LaTeX: (a) shares one media folder, as a user's loop would, so it compiles a string like
"2" once for all scenes; (b) cannot (parallel manim processes sharing a media folder fail
on each other's LaTeX files), and watcher gives every job a private folder (isolation).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import celery_row  # bench/celery_row.py, beside this file
from procfs import children  # bench/procfs.py

ROOT = Path(__file__).resolve().parent.parent
SCENES = ROOT / "bench" / "scenes"
BIN = Path(sys.executable).parent
MANIM_ARGS = ["-ql", "--disable_caching", "--progress_bar", "none", "-v", "WARNING", "--silent"]
CLK_TCK = os.sysconf("SC_CLK_TCK")

TINY = "from manim import *\n\n\nclass GeneratedAnimation(Scene):\n    def construct(self):\n{body}\n"
TINY_RENDER = TINY.format(body="        self.play(FadeIn(Dot()), run_time=0.2)")
TINY_FAIL = TINY.format(body="        x = 1 / 0\n        self.play(FadeIn(Dot()), run_time=0.2)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter idle and memory runs")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="N (default: the CPU count)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder, removed)")
    ap.add_argument("--in-process", nargs=2, type=Path, metavar=("SCENES", "WORK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.in_process:
        print(json.dumps(in_process_times(*args.in_process)))
        return
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="watcher-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        run(args, tmp.resolve())
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> None:
    n = args.workers
    corpus = tmp / "corpus"
    shutil.copytree(SCENES, corpus, dirs_exist_ok=True)
    scenes = sorted(corpus.glob("*.py"))
    out: dict = {"cpus": os.cpu_count(), "workers": n, "scenes": len(scenes), "versions": versions()}
    print(f"cpus={os.cpu_count()} workers={n} scenes={len(scenes)} quick={args.quick}")
    print("versions: " + " ".join(f"{k}={v}" for k, v in out["versions"].items()))
    print()

    rates = {}
    latex: dict[str, dict] = {"c": {}, "e": {}, "f": {}}
    second = repaired(corpus, tmp / "corpus-2")
    for key, label, fn in (
        ("a", "manim -ql, one process per scene, in sequence", lambda: plain_sequential(scenes, tmp / "a")),
        ("b", f"manim -ql, xargs -P {n}", lambda: plain_parallel(scenes, tmp / "b", n)),
        (
            "c",
            f"watcher render --workers {n} (cold cache)",
            lambda: watcher_cli(corpus, tmp / "c", n, "out", latex["c"]),
        ),
        ("d", f"daemon, {n} workers, dropped into the inbox", lambda: daemon_corpus(scenes, tmp / "d", n, out)),
        ("e", "(c) again, one line changed per scene", lambda: watcher_cli(second, tmp / "c", n, "out-e", latex["e"])),
        ("f", "(c) again, the same files (warm cache)", lambda: watcher_cli(corpus, tmp / "c", n, "out-f", latex["f"])),
        (
            "g",
            f"(c) on Celery: redis + worker -n {n} (cold cache)",
            lambda: celery_row.celery_cli(corpus, tmp / "g", n, 2 * n),
        ),
    ):
        if key == "g" and (why := celery_row.available()):
            print(f"({key}) skipped: {why}")
            continue
        seconds, ok = fn()
        rates[key] = 60 * len(scenes) / seconds
        out[key] = {"seconds": round(seconds, 2), "ok": ok, "scenes_per_minute": round(rates[key], 1)}
        hits = ""
        if latex.get(key):
            served, typeset = latex[key].get("cache_hits", 0), latex[key].get("typeset", 0)
            out[key]["latex"] = latex[key]
            hits = f"  LaTeX cache hits {served}/{served + typeset}"
        print(f"({key}) {label:<48} {seconds:7.1f} s  {rates[key]:6.1f} scenes/min  ({ok}/{len(scenes)} ok){hits}")
    for name, x, y, target in (
        ("c/a", "c", "a", 3.5),
        ("c/b", "c", "b", 2.0),
        ("d/b", "d", "b", 1.8),
        ("e/c", "e", "c", 2.0),
        ("g/c", "g", "c", 0.9),
    ):
        if x not in rates:
            continue
        ratio = rates[x] / rates[y]
        out[name] = round(ratio, 2)
        print(f"    {name} = {ratio:.2f}x   (target >= {target}x: {'met' if ratio >= target else 'MISSED'})")
    cache_hit_cost(tmp / "hit", out)
    print()

    overhead(scenes, tmp / "overhead", out)
    # What no isolated renderer can beat: N warm processes splitting the in-process work
    # perfectly, with no start-up, no isolation, and Manim's caches shared across scenes.
    floor = out["overhead"]["total_in_process_s"] / n
    print(
        f"    ceiling: {n} warm processes with zero overhead would need >= {floor:.1f} s, "
        f"so c/a <= {out['a']['seconds'] / floor:.2f}x and c/b <= {out['b']['seconds'] / floor:.2f}x on this corpus"
    )
    out["ceiling"] = {"c/a": round(out["a"]["seconds"] / floor, 2), "c/b": round(out["b"]["seconds"] / floor, 2)}
    print()
    daemon_long_run(tmp / "m", n, 200 if args.quick else 1000, 10 if args.quick else 60, out)

    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    path = results / time.strftime("%Y%m%dT%H%M%S.json")
    path.write_text(json.dumps(out, indent=2))
    print(f"\nsaved {path.relative_to(ROOT)}")


# -- (a), (b), (c) ------------------------------------------------------------------------


def plain_sequential(scenes: list[Path], work: Path) -> tuple[float, int]:
    work.mkdir()
    ok = 0
    started = time.perf_counter()
    for scene in scenes:
        r = subprocess.run(
            [str(BIN / "manim"), *MANIM_ARGS, "--media_dir", str(work / "media"), str(scene)],
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ok += r.returncode == 0
    return time.perf_counter() - started, ok


def plain_parallel(scenes: list[Path], work: Path, n: int) -> tuple[float, int]:
    # One media folder per scene: with a shared one, parallel manim processes fail on each
    # other's LaTeX files (one deletes the .dvi another is converting).
    work.mkdir()
    manim = " ".join([str(BIN / "manim"), *MANIM_ARGS])
    started = time.perf_counter()
    subprocess.run(
        ["xargs", "-0", "-n", "1", "-P", str(n), "sh", "-c", f'exec {manim} --media_dir "media/$(basename "$0")" "$0"'],
        input=b"\0".join(str(s).encode() for s in scenes),
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    return elapsed, len(list((work / "media").glob("*/videos/*/480p15/*.mp4")))  # not partial movies


def watcher_cli(
    corpus: Path, work: Path, n: int, out_name: str = "out", latex: dict | None = None
) -> tuple[float, int]:
    """`watcher render` in `work` (its cache/ beside work/ there: a later call in the same folder finds it warm)."""
    work.mkdir(exist_ok=True)
    started = time.perf_counter()
    run = subprocess.run(
        [str(BIN / "watcher"), "render", str(corpus), "--out", str(work / out_name), "--workers", str(n), "--json"],
        cwd=work,  # no config.yaml here: the defaults, with work/ in this folder
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    if latex is not None:
        with contextlib.suppress(ValueError):
            latex.update(json.loads(run.stdout).get("latex") or {})
    return seconds, len(list((work / out_name).glob("*.mp4")))


def repaired(corpus: Path, into: Path) -> Path:
    """The corpus as a generator's second attempt sends it: every scene with one line changed."""
    into.mkdir()
    for scene in corpus.glob("*.py"):
        lines = scene.read_text().splitlines()
        at = next((i for i, line in enumerate(lines) if "def construct" in line), len(lines) - 1)
        lines.insert(at, "    # second attempt: the generator changed this line")
        (into / scene.name).write_text("\n".join(lines) + "\n")
    return into


def cache_hit_cost(work: Path, out: dict) -> None:
    """What one LaTeX cache hit costs a render child: its request over the socket, the lookup, the reply."""
    import socket

    from watcher import texclient
    from watcher.config import load_config
    from watcher.texcache import TexCache
    from watcher.texservice import JobService, Typesetter

    settings = load_config(None, [f"folders.work={work / 'work'}", f"folders.cache={work / 'cache'}"])
    service = JobService(Typesetter(TexCache(settings.folders.cache_dir, 64), settings), "bench")
    texclient._sock = socket.socket(fileno=service.child_fd)  # this process plays the child
    request = {"tex": "\\documentclass{standalone}\\begin{document}$x^2$\\end{document}", "compiler": "latex"}
    texclient._ask({**request, "format": ".dvi"})  # typeset once
    times = []
    for _ in range(200):
        started = time.perf_counter()
        texclient._ask({**request, "format": ".dvi"})
        times.append(time.perf_counter() - started)
    texclient._sock.close()
    service.close()
    ms = 1000 * statistics.median(times)
    out["cache_hit_ms"] = round(ms, 3)
    print(f"    a LaTeX cache hit, request to reply: {ms:.2f} ms median of 200 (target < 5 ms)")


# -- (d) and the daemon's long run ----------------------------------------------------------


class Daemon:
    """`watcher run` on folders under `root`, logging JSON lines with debug detail."""

    def __init__(self, root: Path, workers: int):
        self.root = root
        (root / "inbox").mkdir(parents=True)
        (root / "config.yaml").write_text(
            json.dumps({"workers": {"count": workers}, "logging": {"format": "json", "level": "DEBUG"}})
        )
        self.log_path = root / "daemon.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "watcher"), "run", "--config", str(root / "config.yaml")],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.filed_count = 0
        self.wait_for(lambda: any("watching" in e.get("message", "") for e in self.log()), 60, "start-up")

    def log(self) -> list[dict]:
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries

    def drop(self, name: str, source: str) -> float:
        """Write a hidden temp name in the inbox, then rename it, as editors and generators do.

        Returns the drop time. (A file moved in from another folder gives only a "created"
        event, which waits daemon.settle_time for the size to settle: 0.5 s more latency.)
        """
        tmp = self.root / "inbox" / f".{name}.tmp"
        tmp.write_text(source)
        at = time.time()
        os.rename(tmp, self.root / "inbox" / name)
        return at

    def filed(self) -> int:
        return sum(1 for folder in ("done", "failed") for _ in (self.root / folder).glob("*.py"))

    def wait_filed(self, count: int, timeout: float, poll: float = 0.01) -> None:
        self.wait_for(lambda: self.filed() >= count, timeout, f"{count} results", poll)

    def wait_for(self, predicate, timeout: float, what: str, poll: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                raise SystemExit(f"the daemon exited ({self.proc.returncode}):\n{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(poll)

    def processes(self) -> list[int]:
        """The daemon and its children (the warm workers, and a render in flight)."""
        return [self.proc.pid, *children(self.proc.pid)]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def daemon_corpus(scenes: list[Path], root: Path, n: int, out: dict) -> tuple[float, int]:
    d = Daemon(root, n)
    try:
        started = time.perf_counter()
        for scene in scenes:
            d.drop(scene.name, scene.read_text())
        d.wait_filed(len(scenes), 600)
        elapsed = time.perf_counter() - started
        ok = len(list((root / "done").glob("*.mp4")))

        # Latency with a worker free: one small scene at a time, each filed before the next.
        drops = {}
        for i in range(10):
            time.sleep(0.3)
            drops[f"latency{i}.py"] = d.drop(f"latency{i}.py", TINY_RENDER)
            d.wait_filed(len(scenes) + i + 1, 120)
        starts, pickups = {}, {}
        for e in d.log():
            name, _, rest = e.get("message", "").partition(": ")
            if name in drops and rest.startswith("render child") and name not in starts:
                starts[name] = e["time"]
            if name in drops and rest.startswith("rendering") and name not in pickups:
                pickups[name] = e["time"]
        to_start = [1000 * (starts[k] - drops[k]) for k in drops if k in starts]
        to_pickup = [1000 * (pickups[k] - drops[k]) for k in drops if k in pickups]
        if to_start:
            out["latency_ms"] = {
                "median": round(statistics.median(to_start), 1),
                "worst": round(max(to_start), 1),
                "pickup_median": round(statistics.median(to_pickup), 1),
            }
    finally:
        d.stop()
    return elapsed, ok


def daemon_long_run(root: Path, n: int, jobs: int, idle: int, out: dict) -> None:
    lat = out.get("latency_ms")
    if lat:
        print(
            f"drop-to-render-start latency, worker free (10 drops): median {lat['median']:.0f} ms, "
            f"worst {lat['worst']:.0f} ms (target median <= 50 ms: {'met' if lat['median'] <= 50 else 'MISSED'}); "
            f"of which drop-to-claim median {lat['pickup_median']:.0f} ms"
        )
    d = Daemon(root, n)
    try:
        for i in range(10):
            d.drop(f"job{i:04}.py", TINY_RENDER if i % 10 == 0 else TINY_FAIL)
        d.wait_filed(10, 300, poll=0.1)
        time.sleep(2)
        rss10 = rss_kb(d.proc.pid), sum(rss_kb(p) for p in children(d.proc.pid))
        started = time.perf_counter()
        for i in range(10, jobs):
            d.drop(f"job{i:04}.py", TINY_RENDER if i % 10 == 0 else TINY_FAIL)
        d.wait_filed(jobs, 3600, poll=0.1)
        elapsed = time.perf_counter() - started
        time.sleep(2)
        rss_n = rss_kb(d.proc.pid), sum(rss_kb(p) for p in children(d.proc.pid))
        growth = 100 * (rss_n[0] - rss10[0]) / rss10[0]
        print(
            f"resident memory: daemon {rss10[0] / 1024:.1f} MiB after 10 jobs, {rss_n[0] / 1024:.1f} MiB after "
            f"{jobs} ({growth:+.1f}%; target within 10%: {'met' if abs(growth) <= 10 else 'MISSED'}); "
            f"warm workers {rss10[1] / 1024:.1f} -> {rss_n[1] / 1024:.1f} MiB"
        )
        print(f"    ({jobs - 10} cheap jobs took {elapsed:.1f} s: {60 * (jobs - 10) / elapsed:.0f} jobs/min)")
        out["memory_kib"] = {"after_10": rss10, f"after_{jobs}": rss_n, "growth_percent": round(growth, 1)}

        time.sleep(2)
        before = cpu_ticks(d.processes()), time.perf_counter()
        time.sleep(idle)
        after = cpu_ticks(d.processes()), time.perf_counter()
        percent = 100 * (after[0] - before[0]) / CLK_TCK / (after[1] - before[1])
        print(
            f"idle CPU over {idle} s: {percent:.2f}% of one CPU, daemon and warm workers "
            f"(target < 1%: {'met' if percent < 1 else 'MISSED'})"
        )
        out["idle_cpu_percent"] = round(percent, 3)
    finally:
        d.stop()


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except (FileNotFoundError, StopIteration):
        return 0


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of `pids`, plus what their reaped children used (cutime + cstime)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total


# -- overhead over an in-process render ------------------------------------------------------


def overhead(scenes: list[Path], work: Path, out: dict) -> None:
    """watcher's time per scene (render_job, one at a time) against scene.render() in one warm process.

    Also counts the LaTeX strings each side compiled: a warm process keeps Manim's
    in-memory cache of number glyphs from one scene to the next, a watcher job starts clean.
    """
    from watcher.config import load_config
    from watcher.executor import LocalExecutor
    from watcher.pipeline import render_job

    work.mkdir()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, __file__, "--in-process", str(scenes[0].parent), str(work / "inproc")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    inproc = json.loads(r.stdout)
    settings = load_config(None, [f"folders.work={work / 'work'}"])
    executor = LocalExecutor()
    executor.start(settings, 1)  # the warm worker and the shared number glyphs, as the CLI and the daemon do
    executor.glyphs.wait()
    seeded = set(executor.glyphs.current())
    with render_job(TINY_RENDER.encode(), "warmup.py", settings, executor=executor):
        pass
    ours = {}
    for scene in scenes:
        started = time.perf_counter()
        with render_job(scene.read_bytes(), scene.name, settings, executor=executor) as result:
            assert result.ok, result.record and result.record.to_json()
            svgs = {p.name for p in (result.videos[0].parents[1] / "media" / "Tex").glob("*.svg")}
            tex = len(svgs - seeded)  # typeset by this job itself
        ours[scene.name] = time.perf_counter() - started, tex
    executor.close()

    print("per-scene overhead of watcher (render_job, 1 at a time) over scene.render() in one warm process:")
    print(f"    {'scene':<22} {'in-process':>10} {'watcher':>9} {'overhead':>9}        LaTeX strings compiled")
    rows = []
    for name in sorted(ours):
        (theirs, tex_in), (mine, tex_ours) = inproc[name], ours[name]
        extra = mine - theirs
        rows.append((name, theirs, mine, tex_in, tex_ours))
        print(
            f"    {name:<22} {theirs:9.3f}s {mine:8.3f}s {1000 * extra:7.0f}ms {100 * extra / theirs:+5.0f}%"
            f"    {tex_in:2} in-process, {tex_ours:2} watcher"
        )
    total_in, total_ours = sum(r[1] for r in rows), sum(r[2] for r in rows)
    total_pct = 100 * (total_ours - total_in) / total_in
    median_ms = statistics.median(1000 * (r[2] - r[1]) for r in rows)
    plain = [r for r in rows if r[3] == r[4]]  # the same LaTeX work on both sides
    plain_pct = 100 * (sum(r[2] for r in plain) / sum(r[1] for r in plain) - 1) if plain else 0.0
    print(
        f"    all {len(rows)} scenes: {total_in:.2f} s in-process, {total_ours:.2f} s watcher, {total_pct:+.1f}% "
        f"(median {median_ms:.0f} ms per scene); LaTeX strings {sum(r[3] for r in rows)} vs {sum(r[4] for r in rows)}"
    )
    verdicts = ["met" if x <= 10 else "MISSED" for x in (plain_pct, total_pct)]
    print(
        f"    the {len(plain)} scenes with the same LaTeX work on both sides: {plain_pct:+.1f}% "
        f"(target <= 10%: {verdicts[0]}; over all scenes: {verdicts[1]})"
    )
    out["overhead"] = {
        "total_in_process_s": round(total_in, 3),
        "total_watcher_s": round(total_ours, 3),
        "percent": round(total_pct, 1),
        "percent_same_latex": round(plain_pct, 1),
        "median_ms": round(median_ms, 1),
        "per_scene": {r[0]: {"in_process": r[1], "watcher": r[2], "latex": [r[3], r[4]]} for r in rows},
    }


def in_process_times(scene_dir: Path, work: Path) -> dict[str, tuple[float, int]]:
    """Render every scene in this one process, with the options of a watcher job.

    Returns the seconds each took and the LaTeX strings it compiled.
    """
    import types

    from manim import Scene, tempconfig

    from watcher.child import manim_options

    def render(path: Path, media: Path) -> tuple[float, int]:
        module = types.ModuleType(path.stem)
        exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
        found = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Scene)]
        [cls] = [c for c in found if c.__module__ == path.stem] or found[-1:]
        options = manim_options(media, media / "out", path.stem, "low_quality")  # exactly as a job renders
        started = time.perf_counter()
        with tempconfig(options):
            cls().render()
        return time.perf_counter() - started, len(list((media / "Tex").glob("*.svg")))

    scenes = sorted(scene_dir.glob("*.py"))
    render(scenes[0], work / "warmup")  # one-time initialisation (fonts, codecs) is not counted
    return {p.name: render(p, work / p.stem) for p in scenes}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "kernel": platform.release()}
    for dist in ("watcher", "manim", "numpy", "av", "pycairo", "ManimPango"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "-"
    try:
        tex = subprocess.run(["latex", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        found["latex"] = tex.split("(")[0].strip().replace(" ", "_")
    except (OSError, IndexError):
        found["latex"] = "-"
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    found["cpu"] = model.replace(" ", "_")
    return found


if __name__ == "__main__":
    main()
