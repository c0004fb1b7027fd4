#!/usr/bin/env python3
"""Close the loop with a code generator: an `on_failed` hook that asks for a fixed scene.

watcher runs it after a scene is filed in failed/, with the record on stdin and the paths
as arguments (the record first, the source last). It hands the failed source and the
record to a generator command of your choosing and drops what that command prints back
into the inbox, as `<name>.py` again, at most --max-attempts times per scene (counted in a
first line `# watcher-repair-attempt: N` that it adds). In config.yaml:

    hooks:
      on_failed: [python3, examples/repair_loop.py, --inbox, inbox, --generator, "my-llm-cli --fix"]

The generator gets the source on stdin and the record's path as its last argument (the
record holds the line, the message, the hint and often an exact `suggestion`), and prints
the whole new scene on stdout; a non-zero exit or empty output gives up on that scene.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

MARK = re.compile(r"^# watcher-repair-attempt: (\d+)\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inbox", type=Path, default=Path("inbox"), help="where fixed scenes are dropped")
    parser.add_argument("--generator", required=True, help="the command that writes a fixed scene (shell words)")
    parser.add_argument("--max-attempts", type=int, default=3, help="repairs per scene before giving up")
    parser.add_argument("--timeout", type=float, default=50.0, help="seconds the generator may take")
    parser.add_argument("paths", nargs="+", type=Path, help="what watcher filed: the record first, the source last")
    args = parser.parse_args(argv)

    record = json.load(sys.stdin)
    source_path, record_path = args.paths[-1], args.paths[0]
    source = source_path.read_text(encoding="utf-8", errors="replace")
    match = MARK.match(source)
    attempt = int(match.group(1)) if match else 0
    if attempt >= args.max_attempts:
        print(f"{record['source']}: {attempt} repairs did not help; left in {source_path.parent}")
        return 0
    body = source[match.end() :] if match else source
    try:
        done = subprocess.run(
            [*shlex.split(args.generator), str(record_path)],
            input=body.encode(),
            capture_output=True,
            timeout=args.timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"{record['source']}: the generator did not answer: {e}")
        return 1
    fixed = done.stdout.decode("utf-8", errors="replace")
    if done.returncode != 0 or not fixed.strip():
        print(f"{record['source']}: the generator gave no scene (exit status {done.returncode})")
        return 1
    # Written beside, then linked in under a free name: the inbox never sees half a file,
    # and a scene dropped meanwhile under the same name is never replaced.
    args.inbox.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".repair-", suffix=".tmp", dir=args.inbox)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"# watcher-repair-attempt: {attempt + 1}\n{fixed}")
    name = Path(record["source"])
    for target in (args.inbox / name.name, args.inbox / f"{name.stem}.repair{attempt + 1}{name.suffix}"):
        try:
            os.link(tmp, target)
            break
        except FileExistsError:
            continue
    else:
        print(f"{record['source']}: the inbox already holds both names for this repair; not dropped")
    os.unlink(tmp)
    print(f"{record['source']}: repair {attempt + 1} of {args.max_attempts} dropped into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
