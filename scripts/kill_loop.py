"""Crash test: SIGKILL the daemon at random moments while it files 100 scenes, restart it,
repeat, then check that every input ended in exactly one place.

    .venv/bin/python scripts/kill_loop.py [--scenes 100] [--kills 10] [--seed N] [--keep DIR]

Exit status 0 when every input is accounted for exactly once: its source in done/ beside a
verified MP4, or in failed/ beside an error record; nothing left in the inbox, processing/
or work/; no MP4 in done/ without its source. Prints what it found either way.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOOD = """from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        self.play(FadeIn(Square().shift({x} * RIGHT)), run_time=0.2)
"""
BAD_RUNTIME = GOOD.replace("self.play(", "1 / 0\n        self.play(")
BAD_SYNTAX = "this is not valid python {x}\n"


def start(root: Path) -> subprocess.Popen[bytes]:
    log = open(root / "daemon.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(root / "config.yaml")],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    log.close()
    return proc


def filed(root: Path) -> int:
    return sum(1 for folder in ("done", "failed") if (root / folder).exists() for _ in (root / folder).glob("*.py"))


def check(root: Path, n: int) -> list[str]:
    """Every problem found; empty when each input is in exactly one place."""
    from watcher.verify import verify_mp4

    problems = []
    seen: dict[str, list[str]] = {}
    for folder in ("done", "failed"):
        for src in sorted((root / folder).glob("*.py")):
            base = re.sub(r"\.\d{8}T\d{6}Z-\d+$", "", src.stem)  # strip a collision suffix
            seen.setdefault(base, []).append(f"{folder}/{src.name}")
            if folder == "done":
                mp4 = src.with_suffix(".mp4")
                try:
                    verify_mp4(mp4)
                except ValueError as e:
                    problems.append(f"{src.name}: its MP4 does not verify: {e}")
                if not src.with_name(src.stem + ".meta.json").exists():
                    problems.append(f"{src.name}: no meta.json beside it")
            elif not src.with_name(src.stem + ".error.json").exists():
                problems.append(f"{src.name}: no error record beside it")
    for i in range(n):
        places = seen.get(f"s{i:03}", [])
        if len(places) != 1:
            problems.append(f"s{i:03}.py is in {len(places)} places: {places}")
    for mp4 in (root / "done").glob("*.mp4"):
        if not mp4.with_suffix(".py").exists():
            problems.append(f"done/{mp4.name} has no source beside it")
    leftovers = [p.name for p in (root / "inbox").iterdir() if not p.name.startswith(".")]
    leftovers += [p.name for p in (root / "processing").iterdir() if not p.name.startswith(".")]
    leftovers += [p.name for p in (root / "work").iterdir()]
    if leftovers:
        problems.append(f"left over: {leftovers}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temp folder)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = args.keep or Path(tempfile.mkdtemp(prefix="watcher-kill-loop-"))
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(
        "workers: {count: 2}\ndaemon: {rescan_interval: 2, settle_time: 0.2, max_attempts: 30}\nrender: {timeout: 30}\n"
    )
    for i in range(args.scenes):
        kind = GOOD if i % 10 else (BAD_RUNTIME if i % 20 else BAD_SYNTAX)
        tmp = root / "inbox" / f".s{i:03}.tmp"
        tmp.write_text(kind.format(x=(i % 7 - 3) / 3))
        os.rename(tmp, root / "inbox" / f"s{i:03}.py")
    print(f"seed {args.seed}; {args.scenes} scenes in {root}", flush=True)

    started = time.monotonic()
    for k in range(args.kills):
        proc = start(root)
        delay = rng.uniform(0.3, 4.0)
        time.sleep(delay)
        before = filed(root)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        print(f"kill {k + 1:2}: SIGKILL after {delay:.2f} s; {before} filed so far", flush=True)
    proc = start(root)
    deadline = time.monotonic() + 600
    while filed(root) < args.scenes and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(60)
    elapsed = time.monotonic() - started

    problems = check(root, args.scenes)
    done = len(list((root / "done").glob("*.py")))
    failed = len(list((root / "failed").glob("*.py")))
    poison = sum(1 for p in (root / "failed").glob("*.error.json") if '"phase": "poison"' in p.read_text())
    print(f"final daemon exit status {rc}; {done} in done/, {failed} in failed/ ({poison} poison) in {elapsed:.0f} s")
    for p in problems:
        print("PROBLEM:", p)
    print("RESULT:", "every input accounted for exactly once" if not problems else f"{len(problems)} problem(s)")
    if not args.keep and not problems:
        shutil.rmtree(root)
    return 0 if not problems and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
