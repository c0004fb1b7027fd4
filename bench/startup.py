"""Start-up: time to the first result (and to the last) of `watcher render` on 4 short scenes,
two of them number-heavy, with a cold cache folder every run.

    .venv/bin/python bench/startup.py [--runs N] [--watcher PATH ...]

Each `--watcher` is a `watcher` executable (another checkout's venv, to compare commits),
optionally with more arguments ("PATH --set render.warm_workers=false");
the runs alternate between them so that machine noise hits each alike. Times are from the
start of the process to the moment its result line appears on stdout.
"""

from __future__ import annotations

import argparse
import os
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


def run_once(watcher: str, scenes: Path, tmp: Path) -> tuple[float, float, list[str]]:
    """(seconds to the first result line, seconds to exit, the result lines) of one cold run."""
    out = tmp / "out"
    program, *extra = shlex.split(watcher)
    argv = [program, "render", str(scenes), "--out", str(out), *extra]
    argv += ["--set", f"folders.work={tmp / 'work'}", "--set", f"folders.cache={tmp / 'cache'}"]
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    first = None
    lines = []
    for line in proc.stdout:
        if line.startswith(("ok", "FAILED")):
            first = first or time.monotonic() - started
            lines.append(line.rstrip())
    proc.wait()
    total = time.monotonic() - started
    assert first is not None and len(lines) == len(SCENES), lines
    return first, total, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--watcher", action="append", help="a watcher executable (default: this venv's)")
    args = ap.parse_args()
    watchers = args.watcher or [str(Path(sys.executable).parent / "watcher")]
    results: dict[str, list[tuple[float, float]]] = {w: [] for w in watchers}
    with tempfile.TemporaryDirectory(prefix="watcher-startup-") as base:
        scenes = Path(base) / "scenes"
        scenes.mkdir()
        for name in SCENES:
            shutil.copy(ROOT / "bench" / "scenes" / name, scenes / name)
        for i in range(args.runs):
            for watcher in watchers if i % 2 == 0 else reversed(watchers):
                tmp = Path(tempfile.mkdtemp(dir=base))  # a cold cache folder and work folder each run
                os.chmod(tmp, 0o711)
                first, total, lines = run_once(watcher, scenes, tmp)
                results[watcher].append((first, total))
                print(f"run {i + 1} {watcher}: first result {first:.2f} s, all {total:.2f} s", flush=True)
                for line in lines:
                    print(f"    {line}")
    print(f"{os.cpu_count()} CPUs; {len(SCENES)} scenes ({', '.join(SCENES)}), cold cache folder; median (min) s")
    for watcher, times in results.items():
        firsts, totals = [t[0] for t in times], [t[1] for t in times]
        print(
            f"    {watcher}: first result {statistics.median(firsts):.2f} ({min(firsts):.2f}), "
            f"all {statistics.median(totals):.2f} ({min(totals):.2f})"
        )


if __name__ == "__main__":
    main()
