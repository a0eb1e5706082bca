"""JSON Lines reading whose errors name the file and line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any


def jsonl_objects(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields ("file:line", object) for every non-empty line of a JSON Lines file.

    Raises ValueError naming "file:line" for malformed JSON or a line that is not an object.
    """
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: malformed JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row
