"""Start-up: time to the first result (and to the last) of `watcher render` on 4 short scenes,
two of them number-heavy, with a cold cache folder every run (--warm: a cache folder that
one untimed run of the same batch filled).

    .venv/bin/python bench/startup.py [--runs N] [--warm] [--watcher PATH ...]

Prints the seconds from the start of the process to its first result line, to its last and
to its exit, and the CPU seconds of the whole process tree. Each `--watcher` is a `watcher`
executable (another checkout's venv, to compare commits), optionally with more arguments
("PATH --set render.warm_workers=false"); the runs alternate between them so that machine
noise hits each alike.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENES = ["number_line.py", "axes_points.py", "mathtex_sum.py", "shapes_grid.py"]


def run_once(watcher: str, scenes: Path, tmp: Path, out: Path) -> tuple[float, float, float, float, list[str]]:
    """(seconds to the first result line, to the last, to exit, CPU seconds of the whole process
    tree, the result lines) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    program, *extra = shlex.split(watcher)
    argv = [program, "render", str(scenes), "--out", str(out), *extra]
    argv += ["--set", f"folders.work={tmp / 'work'}", "--set", f"folders.cache={tmp / 'cache'}"]
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    first = last = 0.0
    lines = []
    for line in proc.stdout:
        if line.startswith(("ok", "FAILED")):
            last = time.monotonic() - started
            first = first or last
            lines.append(line.rstrip())
    proc.wait()
    total = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    assert len(lines) == len(SCENES), lines
    return first, last, total, cpu, lines


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warm", action="store_true", help="time runs with a cache folder filled by one run before")
    ap.add_argument("--watcher", action="append", help="a watcher executable (default: this venv's)")
    args = ap.parse_args()
    watchers = args.watcher or [str(Path(sys.executable).parent / "watcher")]
    results: dict[str, list[tuple[float, float, float, float]]] = {w: [] for w in watchers}
    with tempfile.TemporaryDirectory(prefix="watcher-startup-") as base:
        scenes = Path(base) / "scenes"
        scenes.mkdir()
        for name in SCENES:
            shutil.copy(ROOT / "bench" / "scenes" / name, scenes / name)
        for i in range(args.runs):
            for watcher in watchers if i % 2 == 0 else reversed(watchers):
                tmp = Path(tempfile.mkdtemp(dir=base))  # a cold cache folder and work folder each run
                os.chmod(tmp, 0o711)
                if args.warm:
                    run_once(watcher, scenes, tmp, tmp / "filling")
                first, last, total, cpu, lines = run_once(watcher, scenes, tmp, tmp / "out")
                results[watcher].append((first, last, total, cpu))
                times = f"first {first:.2f} s, last {last:.2f} s, exit {total:.2f} s, CPU {cpu:.1f} s"
                print(f"run {i + 1} {watcher}: {times}")
                for line in lines:
                    print(f"    {line}")
    cache = "a warm cache folder" if args.warm else "a cold cache folder"
    print(f"{os.cpu_count()} CPUs; {len(SCENES)} scenes ({', '.join(SCENES)}), {cache}; median (min) s")
    for watcher, times in results.items():
        cells = [(name, [t[i] for t in times]) for i, name in enumerate(("first", "last", "exit", "CPU"))]
        text = ", ".join(f"{name} {statistics.median(v):.2f} ({min(v):.2f})" for name, v in cells)
        print(f"    {watcher}: {text}")


if __name__ == "__main__":
    main()
