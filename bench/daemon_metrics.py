"""The daemon's responsiveness and idle cost, measured on a real daemon subprocess.

    .venv/bin/python bench/daemon_metrics.py [--drops 100] [--idle 60]

Drop-to-render-start latency: one scene at a time is renamed into the inbox (the way
generators publish files) while a worker is free; the start is the daemon's "rendering"
log line, whose JSON-log timestamp has millisecond resolution. Idle CPU: utime + stime of
the daemon (and any children) from /proc over `--idle` seconds with an empty inbox.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENE = """from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        self.play(FadeIn(Dot()), run_time=0.1)
"""


def start_daemon(root: Path, extra: str = "") -> tuple[subprocess.Popen[bytes], Path]:
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(f"logging: {{format: json}}\nworkers: {{count: 2}}\n{extra}")
    log = root / "daemon.log"
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(root / "config.yaml")],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=f,
        )
    _wait(lambda: "watching" in log.read_text(), 30)
    return proc, log


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("waited too long")
        time.sleep(0.01)


def _render_starts(log: Path) -> dict[str, float]:
    starts = {}
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        msg = entry.get("message", "")
        if ": rendering" in msg:
            starts.setdefault(msg.split(":")[0], entry["time"])
    return starts


def latency(root: Path, drops: int) -> list[float]:
    """Seconds from the rename into the inbox to the start of the render, per drop."""
    proc, log = start_daemon(root)
    dropped = {}
    try:
        for i in range(drops):
            name = f"lat{i:03}.py"
            tmp = root / "inbox" / f".{name}.tmp"
            tmp.write_text(SCENE)
            dropped[name] = time.time()
            os.rename(tmp, root / "inbox" / name)
            _wait(lambda n=name: (root / "done" / n).exists() or (root / "failed" / n).exists(), 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    starts = _render_starts(log)
    return [starts[name] - t for name, t in dropped.items()]


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its reaped children (cutime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def idle_cpu(root: Path, seconds: float) -> float:
    """Percent of one CPU the daemon used while idle."""
    proc, _ = start_daemon(root)
    try:
        time.sleep(2)  # past start-up
        before, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        used, wall = cpu_seconds(proc.pid) - before, time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return 100 * used / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drops", type=int, default=100)
    ap.add_argument("--idle", type=float, default=60)
    args = ap.parse_args()
    print(f"cpus={os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        lat = sorted(latency(Path(tmp) / "lat", args.drops))
        print(
            f"drop-to-render-start over {len(lat)} drops: median {statistics.median(lat) * 1000:.1f} ms, "
            f"p90 {lat[int(len(lat) * 0.9) - 1] * 1000:.1f} ms, worst {lat[-1] * 1000:.1f} ms"
        )
        print(f"idle CPU over {args.idle:.0f} s: {idle_cpu(Path(tmp) / 'idle', args.idle):.2f}% of one CPU")


if __name__ == "__main__":
    main()
