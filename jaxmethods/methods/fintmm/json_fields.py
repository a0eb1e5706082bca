"""Case- and punctuation-insensitive field access on the benchmark's JSON records.

Shared by `loaders` (corpus files) and `qa_loader` (QA.json); every error is a `LoaderError`
whose message names the file, the record index and the field.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any


class LoaderError(ValueError):
    """A benchmark file does not match the expected schema (message names file/index/field)."""


_NON_ALNUM = re.compile(r"[^a-z0-9]")


@functools.lru_cache(maxsize=4096)
def norm_key(key: str) -> str:
    return _NON_ALNUM.sub("", str(key).lower())


class NormDict(dict):
    """A record whose keys are already `_norm`-alised."""


def lower_keys(rec: dict[str, Any]) -> NormDict:
    return rec if isinstance(rec, NormDict) else NormDict((norm_key(k), v) for k, v in rec.items())


def get_field(rec: dict[str, Any], *names: str, default: Any = None) -> Any:
    """The first present, non-null field among `names` (case/punctuation-insensitive)."""
    rec = lower_keys(rec)
    for name in names:
        value = rec.get(norm_key(name))
        if value is not None:
            return value
    return default


def need_field(rec: dict[str, Any], where: str, *names: str) -> Any:
    value = get_field(rec, *names)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise LoaderError(f"{where}: missing field {names[0]!r} (keys: {sorted(rec)[:12]})")
    return value


def as_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    return tuple(str(v) for v in value)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The list of record dicts a JSON file holds (a list, {"x": [...]} or {uuid: record})."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise LoaderError(f"{path}: invalid JSON ({err})") from None
    if isinstance(obj, dict):
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(obj) == 1 and lists:
            obj = lists[0]
        elif obj and all(isinstance(v, dict) for v in obj.values()):
            obj = [{"uuid": k, **v} if get_field(v, "uuid") is None else v for k, v in obj.items()]
    if not isinstance(obj, list):
        raise LoaderError(f"{path}: expected a list of records, got {type(obj).__name__}")
    for i, rec in enumerate(obj):
        if not isinstance(rec, dict):
            raise LoaderError(f"{path.name}[{i}]: expected an object, got {type(rec).__name__}")
    return obj
