"""The one entry point: `python launch/run.py --config configs/<method>.py[:variant] --workdir DIR`.

Overrides use ml_collections config flags, e.g. `--config.optim.lr=3e-4`. The config names the
method (`config.method`); rerunning with the same workdir resumes from its newest checkpoint.

The workdir holds `config.json`, `metrics.jsonl`, `summary.json` and `checkpoints/`. One run at a
time: a second run in the same workdir refuses, naming the holder of `<workdir>/.lock`. On resume
the config is compared with the stored `config.json`: changed run-shape keys (model, data, seed,
batch sizes, mesh, epochs/steps, ...; `jaxmethods.train.workdir.is_run_shape`) refuse unless
`--allow_config_change`; other changes warn and go to `config_history.jsonl`.

Several processes (one per host or per GPU) join through `jax.distributed`: SLURM, Open MPI and
TPU pod slices are detected; otherwise give `--coordinator HOST:PORT --num_processes N
--process_id I` (or `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`). Only
process 0 writes files (docs/multihost.md).

Exit codes: 0 finished (or preempted by SIGTERM after a save); 1 the run stopped and its result
is not trustworthy (non-finite loss, failed save, empty or malformed data); 2 refused to start
(bad flag or config value, workdir in use, run-shape config change). Errors are one line on
stderr; `--verbose` adds the traceback.
"""

from __future__ import annotations

import ast
import difflib
import glob
import importlib
import json
import logging
import os
import re
import signal
import sys
import time
import traceback

from absl import app, flags
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/<method>.py[:variant[,key=value,...]]"
)
_WORKDIR = flags.DEFINE_string("workdir", None, "output folder (default: runs/<config.name>)")
_ALLOW_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False, "resume even if run-shape config keys changed"
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator", None, "HOST:PORT of process 0 (default: $JAX_COORDINATOR_ADDRESS)"
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "number of processes (default: $JAX_NUM_PROCESSES)"
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "this process's id in [0, num_processes) (default: $JAX_PROCESS_ID)"
)
_VERBOSE = flags.DEFINE_bool("verbose", False, "debug logging and full tracebacks on errors")

HELP_ARGS = ("-h", "--help", "-help", "-?", "--helpshort")
USAGE_ERROR, RUN_FAILED = 2, 1
log = logging.getLogger("launch")


def config_variants(configs_dir: str = os.path.join(ROOT, "configs")) -> dict[str, tuple]:
    """`{stem: VARIANTS}` of every `configs/<stem>.py` that defines a `VARIANTS` tuple.

    Read from the source with `ast`: the module's top-level constant assignments are evaluated
    in order without builtins or imports, so no method package is imported.
    """
    safe = {"__builtins__": {"tuple": tuple, "list": list, "sorted": sorted, "len": len}}
    out = {}
    for path in sorted(glob.glob(os.path.join(configs_dir, "*.py"))):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        scope = dict(safe)
        for node in tree.body:
            if isinstance(node, ast.AnnAssign):
                targets, value = [node.target], node.value
            elif isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            else:
                continue
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if not names or value is None:
                continue
            try:
                result = eval(compile(ast.Expression(value), path, "eval"), scope)
            except Exception:
                continue  # not a constant expression; only VARIANTS matters here
            scope.update(dict.fromkeys(names, result))
        if isinstance(scope.get("VARIANTS"), (tuple, list)):
            out[os.path.splitext(os.path.basename(path))[0]] = tuple(scope["VARIANTS"])
    return out


def help_text() -> str:
    """The module docstring, the flags and every registered method with its config variants."""
    from jaxmethods.methods import METHODS  # a dict of import paths; imports no method

    variants = config_variants()
    lines = [__doc__.strip(), "", "Methods (config.method) and their configs:"]
    for name in sorted(METHODS):
        v = variants.get(name)
        where = f"configs/{name}.py: {', '.join(v)}" if v else "(no configs/<name>.py)"
        lines.append(f"  {name:12s} {where}")
    others = sorted(set(variants) - set(METHODS))
    for name in others:
        lines.append(f"  {'':12s} configs/{name}.py: {', '.join(variants[name])}")
    lines += ["", "Flags:"]
    for flag in (_CONFIG, _WORKDIR, _ALLOW_CHANGE, _COORDINATOR, _NUM_PROCESSES, _PROCESS_ID):
        lines.append(f"  --{flag.name}: {flags.FLAGS[flag.name].help}")
    lines.append(f"  --{_VERBOSE.name}: {flags.FLAGS[_VERBOSE.name].help}")
    lines.append("  --config.KEY=VALUE: override one config value, e.g. --config.optim.lr=3e-4")
    return "\n".join(lines)


_DID_YOU_MEAN = re.compile(r'Did you mean \\*"([^"\\]+)\\*" instead of \\*"([^"\\]+)\\*"')
_UNKNOWN_FLAG = re.compile(r"Unknown command line flag '([^']+)'")


def describe_flag_error(exc: BaseException, argv: list[str]) -> str:
    """One line for a command-line error, the suggested fix first where there is one."""
    text = str(exc)
    m = _DID_YOU_MEAN.search(text)
    overrides = [a.split("=", 1)[0] for a in argv if a.startswith("--config.")]
    if m:
        good, bad = m.groups()
        for arg in overrides:
            parts = arg[2:].split(".")
            if bad in parts[1:]:
                fixed = ".".join(good if p == bad else p for p in parts)
                return f"did you mean --{fixed}? {arg}: unknown config key {bad!r}"
        return f"did you mean {good!r}? unknown config key {bad!r}"
    m = _UNKNOWN_FLAG.search(text)
    if m:
        name = m.group(1)
        close = difflib.get_close_matches(name, list(flags.FLAGS), n=1)
        hint = f"did you mean --{close[0]}? " if close else ""
        return f"{hint}--{name}: unknown flag (see --help)"
    if isinstance(exc, (KeyError, AttributeError)) and overrides:
        return f"{', '.join(overrides)}: unknown config key ({text.strip(chr(39))})"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing, with `--help` (exit 0) and one-line errors (exit 2) of our own."""
    if any(a in HELP_ARGS for a in argv[1:]):
        print(help_text())
        sys.exit(0)
    try:
        rest = flags.FLAGS(argv)
        if _CONFIG.value is None:
            raise flags.IllegalFlagValueError("--config is required (see --help)")
        _CONFIG.value.get("method")  # a config file that failed to load raises here
    except (flags.Error, KeyError, AttributeError, ValueError, OSError) as e:
        print(f"error: {describe_flag_error(e, argv)}", file=sys.stderr)
        sys.exit(USAGE_ERROR)
    return rest


def validate_config(config) -> None:
    """Converts the config with the method's `from_config_dict` (if it has one), so a bad value
    stops the launch before anything is written."""
    from jaxmethods.methods import METHODS

    name = config.method
    if name not in METHODS:
        close = difflib.get_close_matches(str(name), list(METHODS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise KeyError(
            f"{hint}config.method = {name!r} is not registered; known: {sorted(METHODS)}"
        )
    package = METHODS[name].partition(":")[0].rsplit(".", 1)[0]
    try:
        module = importlib.import_module(f"{package}.config")
    except ModuleNotFoundError as e:
        if e.name != f"{package}.config":
            raise
        return
    convert = getattr(module, "from_config_dict", None)
    if convert is not None:
        convert(config)


def failure_exit_code(exc: BaseException) -> int | None:
    """2 for refusals, 1 for a run whose result cannot be trusted, None for anything else (a
    bug: the traceback is kept)."""
    from jaxmethods.train.config import ConfigError
    from jaxmethods.train.workdir import ConfigChangeError, WorkdirLockedError

    if isinstance(exc, (ConfigError, ConfigChangeError, WorkdirLockedError)):
        return USAGE_ERROR
    loop = sys.modules.get("jaxmethods.train.loop")
    fatal = tuple(
        t
        for t in (getattr(loop, "NonFiniteLossError", None), getattr(loop, "SaveFailedError", None))
        if isinstance(t, type)
    )
    if isinstance(exc, (*fatal, ValueError, FileNotFoundError)):
        return RUN_FAILED
    return None


def _on_sigterm(signum, frame):
    # Outside the training loop (which installs its own handler), SIGTERM unwinds through the
    # `finally` blocks, so the workdir lock is released.
    raise SystemExit(128 + signum)


def _all_agree(ok: bool) -> bool:
    """Process 0's verdict, broadcast to every process (so all of them stop, not only 0)."""
    import jax

    if jax.process_count() == 1:
        return ok
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


def run(config, workdir: str) -> str:
    """Locks `workdir`, checks and writes `config.json`, runs the method, writes the summary.

    Process 0 alone takes the lock and writes files; its verdict on the lock and the config
    change reaches every process, so a refused multi-process launch stops everywhere.
    """
    import jax

    from jaxmethods.methods import get_method
    from jaxmethods.train.metrics import write_summary
    from jaxmethods.train.workdir import (
        RunLock,
        WorkdirLockedError,
        check_config_change,
        write_config,
    )

    lock, refused = RunLock(workdir), None
    if jax.process_index() == 0:
        try:
            lock.acquire()
            new = json.loads(config.to_json_best_effort())
            check_config_change(workdir, new, allow_change=_ALLOW_CHANGE.value)
            write_config(workdir, config.to_json_best_effort(indent=2))
        except Exception as e:  # re-raised below, once the other processes know
            refused = e
    try:
        if not _all_agree(refused is None):
            raise refused or WorkdirLockedError(
                f"process 0 refused to start in {workdir} (workdir in use or run-shape config "
                "change); see its log"
            )
        start = time.time()
        summary = get_method(config.method)(config, workdir)
        summary = dict(summary or {}, wall_time_s=time.time() - start)
        return write_summary(workdir, summary)
    finally:
        lock.release()


def main(argv: list[str]) -> None:
    del argv
    verbose = _VERBOSE.value or flags.FLAGS["verbosity"].value >= 1
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("absl", "jax._src", "orbax", "etils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if threading_is_main():
        signal.signal(signal.SIGTERM, _on_sigterm)

    config = _CONFIG.value
    stage = "config"
    try:
        if "method" not in config:
            raise KeyError(
                f"{flags.FLAGS['config'].config_filename}: the config has no `method` field"
            )
        from jaxmethods.train.mesh import maybe_initialize_distributed

        maybe_initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
        validate_config(config)
        stage = "run"
        workdir = _WORKDIR.value or os.path.join("runs", config.get("name", config.method))
        path = run(config, workdir)
        log.info("summary written to %s", path)
    except (KeyError, ValueError, RuntimeError, OSError) as e:
        code = failure_exit_code(e)
        if stage == "config" and isinstance(e, (KeyError, ValueError)):
            code = USAGE_ERROR
        if code is None:
            raise
        if verbose:
            traceback.print_exc()
        message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        lines = message.strip().splitlines() or [""]
        more = " (more with --verbose)" if len(lines) > 1 and not verbose else ""
        print(f"error: {type(e).__name__}: {lines[0]}{more}", file=sys.stderr)
        sys.exit(code)


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
