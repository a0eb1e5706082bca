"""Converts the authors' pickled tables to Parquet, once (the pipeline reads Parquet only).

    python -m jaxmethods.methods.reason4rec.convert --trust-pickle SRC DST

SRC is a `.pkl` file (DST is then the `.parquet` file) or a folder (every `*.pkl` below it is
converted to the same relative path under DST; pickles that are not tables, such as the
`*_instruct.pkl` message lists, are listed and skipped). Unpickling runs code from the file, so
the command refuses to run without `--trust-pickle`. Each table is checked (columns, dtypes: the
first bad row is named) before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from jaxmethods.methods.reason4rec.data import DataError, validate_frame


def convert_file(src: Path, dst: Path) -> int:
    """Converts one pickled DataFrame; returns its row count. Raises `DataError`."""
    df = pd.read_pickle(src)
    validate_frame(df, str(src))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(dst)
    return len(df)


def convert(src: str | Path, dst: str | Path, *, log=print) -> dict[str, int]:
    """{relative path: rows} of the tables written."""
    src, dst = Path(src), Path(dst)
    if src.is_file():
        return {src.name: convert_file(src, dst)}
    if not src.is_dir():
        raise DataError(f"{src}: no such file or folder")
    done = {}
    for path in sorted(src.rglob("*.pkl")):
        rel = path.relative_to(src)
        try:
            obj_is_table = isinstance(pd.read_pickle(path), pd.DataFrame)
        except Exception as e:  # a pickle pandas cannot read: name it and stop
            raise DataError(f"{path}: cannot be unpickled: {type(e).__name__}: {e}") from e
        if not obj_is_table:
            log(f"skipped {path}: not a pandas DataFrame")
            continue
        done[str(rel)] = convert_file(path, (dst / rel).with_suffix(".parquet"))
        log(f"{path} -> {(dst / rel).with_suffix('.parquet')}: {done[str(rel)]} rows")
    if not done:
        raise DataError(f"{src}: no pickled DataFrame found")
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jaxmethods.methods.reason4rec.convert",
                                 description=__doc__.split("\n\n")[0])  # fmt: skip
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--trust-pickle", action="store_true",
                    help="required: unpickling runs code from the file; pass it only for "
                         "files you trust (the authors' release)")  # fmt: skip
    args = ap.parse_args(argv)
    if not args.trust_pickle:
        print(
            "refusing to unpickle: loading a pickle runs code from the file. Pass --trust-pickle "
            f"if {args.src} comes from a source you trust (the authors' Google Drive release).",
            file=sys.stderr,
        )
        return 2
    try:
        convert(args.src, args.dst)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
