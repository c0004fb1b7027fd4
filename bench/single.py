"""One short low-quality scene: `manim -ql` versus `watcher.execute_animation_code`,
interleaved in one run on the same file so that machine noise hits both alike.

    .venv/bin/python bench/single.py [SCENE.py] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from watcher import execute_animation_code

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene", nargs="?", default=str(ROOT / "examples" / "hello_text.py"))
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    scene = Path(args.scene).resolve()
    code = scene.read_text()
    manim = Path(sys.executable).parent / "manim"
    cli, lib = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            t = time.perf_counter()
            subprocess.run(
                [
                    str(manim),
                    "-ql",
                    "--disable_caching",
                    "--progress_bar",
                    "none",
                    "-v",
                    "WARNING",
                    "--media_dir",
                    f"{tmp}/media",
                    str(scene),
                    "GeneratedAnimation",
                ],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                cwd=tmp,
            )
            cli.append(time.perf_counter() - t)
            t = time.perf_counter()
            execute_animation_code(code, f"run{i}", f"{tmp}/out")
            lib.append(time.perf_counter() - t)
    print(
        f"cpus={os.cpu_count()} python={platform.python_version()} manim={metadata.version('manim')} "
        f"scene={scene.name} runs={args.runs}"
    )
    for name, xs in (("manim -ql", cli), ("execute_animation_code", lib)):
        print(f"{name:>24}: median {statistics.median(xs):.3f} s  min {min(xs):.3f} s  max {max(xs):.3f} s")
    print(f"{'ratio':>24}: {statistics.median(lib) / statistics.median(cli):.2f}x the time of manim -ql")


if __name__ == "__main__":
    main()
