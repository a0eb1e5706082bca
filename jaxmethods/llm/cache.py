"""On-disk completion cache: one append-only JSONL file, one line per answered request.

Line: `{"key": <sha256 of the request + model>, "completion": {text, finish_reason, counts,
model}}`. A rerun reads every line at start, so repeated requests cost no call. Lines are
appended under a lock with one `write` each (a line is never interleaved with another thread's);
a corrupt line (a torn write from a killed process, a hand edit) is skipped with a warning naming
the file and line. The first line for a key wins.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from jaxmethods.llm.types import Completion

log = logging.getLogger(__name__)

CACHE_FILE = "completions.jsonl"


class CompletionCache:
    """`get(key) -> Completion | None`, `put(key, completion)`; `path` is the JSONL file."""

    def __init__(self, folder: str | os.PathLike):
        self.path = os.path.join(os.fspath(folder), CACHE_FILE)
        os.makedirs(os.fspath(folder), exist_ok=True)
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        self._load()

    def _load(self) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    key, record = row["key"], row["completion"]
                    Completion.from_record(record, key)  # all fields present and typed
                except (ValueError, KeyError, TypeError) as e:
                    self.skipped_lines += 1
                    log.warning(
                        "%s:%d: skipping a corrupt cache line (%s: %s): %r",
                        self.path, lineno, type(e).__name__, e, line[:80],
                    )  # fmt: skip
                    continue
                self._records.setdefault(key, record)

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def get(self, key: str) -> Completion | None:
        record = self._records.get(key)
        return None if record is None else Completion.from_record(record, key)

    def put(self, key: str, completion: Completion) -> None:
        record = completion.to_record()
        line = json.dumps({"key": key, "completion": record}, ensure_ascii=False) + "\n"
        with self._lock:
            if key in self._records:
                return
            self._records[key] = record
            # A torn last line from a killed writer must not swallow this one.
            needs_newline = _ends_without_newline(self.path)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(("\n" if needs_newline else "") + line)
                f.flush()


def _ends_without_newline(path: str) -> bool:
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"
