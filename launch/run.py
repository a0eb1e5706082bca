"""The one entry point: `python launch/run.py --config configs/<method>.py[:variant] --workdir DIR`.

Overrides use ml_collections config flags, e.g. `--config.optim.lr=3e-4`. The config names the
method (`config.method`); rerunning with the same workdir resumes from its newest checkpoint.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/<method>.py[:variant]")
_WORKDIR = flags.DEFINE_string("workdir", None, "output folder (default: runs/<config.name>)")
flags.mark_flags_as_required(["config"])


def main(argv: list[str]) -> None:
    del argv
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("absl", "jax._src", "orbax", "etils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from jaxmethods.methods import get_method
    from jaxmethods.train.mesh import maybe_initialize_distributed
    from jaxmethods.train.metrics import write_summary

    config = _CONFIG.value
    if "method" not in config:
        raise app.UsageError(
            f"{flags.FLAGS['config'].config_filename}: the config has no `method` field"
        )
    maybe_initialize_distributed()
    workdir = _WORKDIR.value or os.path.join("runs", config.get("name", config.method))
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))
    start = time.time()
    summary = get_method(config.method)(config, workdir)
    summary = dict(summary or {}, wall_time_s=time.time() - start)
    path = write_summary(workdir, summary)
    logging.getLogger("launch").info("summary written to %s", path)


if __name__ == "__main__":
    app.run(main)
