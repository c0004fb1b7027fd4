"""Which known names a misspelt one looks like, and when one of them is clearly the one meant.

Shared by the static check (`watcher.apicheck`: a name or keyword the snapshot of Manim's
API does not have) and the render child's hints (`watcher.hints`: the same mistakes,
found at run time), so that both suggest the same fix for the same slip.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Names in `choices` that look like `word`, best first (case-insensitive, as people misspell)."""
    by_lower: dict[str, str] = {}
    for c in choices:
        by_lower.setdefault(c.lower(), c)
    return [by_lower[m] for m in difflib.get_close_matches(word.lower(), by_lower, n=n, cutoff=0.75)]


def best(matches: list[str], word: str) -> str | None:
    """The match to suggest: the only one, or one clearly closer than the next."""
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        ratio = [difflib.SequenceMatcher(None, word.lower(), m.lower()).ratio() for m in matches[:2]]
        if ratio[0] - ratio[1] >= 0.1:
            return matches[0]
    return None
