"""Writing report files whole: a temporary file beside the target, renamed over it."""

from __future__ import annotations

from pathlib import Path

from daemon.runtime.statedir import replace_private


def write_atomic(path: Path, content: bytes) -> Path:
    """Write `content` to `path` so a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_private(path, content)
    return path
