"""`--journal FILE`: every message received and sent, per client, as JSON lines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Protocol


class _Peer(Protocol):
    client_id: int | None
    peer: str


class Journal:
    """Appends one JSON object per message: wall time, client, direction and fields."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("a", encoding="utf-8", buffering=1 << 16)

    def record_fields(self, session: _Peer, direction: str, fields: list[str]) -> None:
        entry = {
            "t": round(time.time(), 6),
            "client": session.client_id,
            "peer": session.peer,
            "dir": direction,
            "fields": fields,
        }
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def record(self, session: _Peer, direction: str, frame: bytes) -> None:
        self.record_fields(session, direction, frame[4:].decode("ascii").split("\0")[:-1])

    def close(self) -> None:
        self._file.close()
