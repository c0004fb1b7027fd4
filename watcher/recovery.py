"""Start-up recovery: settle what an earlier run (killed at any point) left in the folders.

See `watcher.layout` for the crash reasoning: a claim with a publish plan is rolled
forward, one without goes back to be rendered (or is filed as poison after
`daemon.max_attempts` begun renders), and work/ keeps only the job directories of
processes that are still alive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import threading
from pathlib import Path

from . import jobfs
from .config import Folders
from .errors import ErrorRecord
from .folders import PROBE_PREFIX
from .fsops import remove_quietly
from .layout import CLAIM_RE, SIDECAR, Claimed, Layout, read_claim_meta

log = logging.getLogger(__name__)

_TMP_RE = re.compile(r"^\..+\.tmp-[0-9a-f]{8}$")


def recover(layout: Layout) -> list[Claimed]:
    """Settle what an earlier run left behind; call once at start-up, under `lock()`.

    Finishes interrupted publishes, removes empty or orphaned claim directories and
    everything under work/, sweeps stale temp files, rejects bad entries, files claims
    with `attempts >= max_attempts` in failed/ as "poison", and returns the rest
    (oldest claim first) to be rendered again.
    """
    clean_work(layout.folders.work)
    claims = []
    try:
        names = sorted(os.listdir(layout.folders.processing))
    except FileNotFoundError:
        names = []
    for name in names:
        path = layout.folders.processing / name
        if name.startswith("."):  # the lock file, probes
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not (CLAIM_RE.match(name) and stat.S_ISDIR(st.st_mode)):
            # A stray entry (put there by hand): claim it like an inbox entry.
            adopted = layout.claim_entry(path, (str(path), st.st_dev, st.st_ino))
            if adopted is None:
                continue
            path = adopted.path.parent
        claimed = _recover_claim(layout, path)
        if claimed is not None:
            claims.append(claimed)
    _sweep_temps(layout.folders)
    return claims


def _recover_claim(layout: Layout, folder: Path) -> Claimed | None:
    meta = read_claim_meta(folder)
    if meta.get("plan"):
        try:
            finals = layout.finish_planned(folder, meta)
        except OSError as e:
            log.error("%s: cannot finish the interrupted publish: %s", meta.get("name"), e)
        else:
            log.info("%s: finished an interrupted publish: %s", meta.get("name"), finals[-1])
        return None
    sources = []
    for entry in os.scandir(folder):
        if not entry.name.startswith("."):
            sources.append(entry.name)
        elif entry.name != SIDECAR:  # outputs staged before the plan was written
            remove_quietly(Path(entry.path))
    if not sources:
        log.info("removing the empty claim %s", folder.name)
        layout.drop_claim_dir(folder)
        return None
    if len(sources) > 1:
        log.error("claim %s holds %d files (%s); left for a person to sort out", folder, len(sources), sources)
        return None
    claimed = Claimed(folder / sources[0], sources[0], int(meta.get("attempts", 0)))
    record = layout.inspect(claimed)
    if record is not None:
        layout.reject(claimed, record)
        return None
    if claimed.attempts >= layout.max_attempts:
        record = ErrorRecord(
            source=claimed.name,
            phase="poison",
            type="RepeatedCrash",
            message=f"crashed the renderer {claimed.attempts} times; not retried "
            f"(daemon.max_attempts is {layout.max_attempts})",
            attempts=claimed.attempts,
        )
        try:
            layout.publish_failed(claimed, record)
            log.error("%s: failed: %s", claimed.name, record.message)
        except OSError as e:
            log.error("%s: cannot file as poison: %s", claimed.name, e)
        return None
    log.info("%s: interrupted after %d attempt(s); queued again", claimed.name, claimed.attempts)
    return claimed


def clean_work(work: Path) -> None:
    """Remove what dead processes left in work/: each tree in bounded time, the rest in the background.

    A directory a live process holds (`jobfs.make_dir`: a running `watcher render`, a
    doctor's probe, a re-render's staging, whatever its name) is left alone. A job
    directory is whatever a scene made of it (thousands of levels, chmod 000, millions
    of files): `jobfs.discard` never recurses and never raises, and moves what it cannot
    remove in time to work/.trash, emptied by a background thread, so that a start-up
    always succeeds. The lock taken to check an entry is held while it is removed.
    """
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(work):
            if entry.name == jobfs.TRASH:
                continue
            with jobfs.claim_orphan(Path(entry.path)) as orphan:
                if orphan:
                    log.info("removing orphaned work entry %s", entry.path)
                    jobfs.discard(Path(entry.path))
    if os.path.lexists(work / jobfs.TRASH):
        threading.Thread(target=jobfs.empty_trash, args=(work,), name="empty-trash", daemon=True).start()


def _sweep_temps(folders: Folders) -> None:
    """Remove our temp files and probes; in the inbox only probes (other temp names are users')."""
    for key in ("inbox", "processing", "done", "failed"):
        folder = getattr(folders, key)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                ours = entry.name.startswith(PROBE_PREFIX) or (key != "inbox" and _TMP_RE.match(entry.name))
                if ours and entry.is_file(follow_symlinks=False):
                    log.info("removing stale temp file %s", entry.path)
                    remove_quietly(Path(entry.path))
