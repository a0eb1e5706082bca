"""The test method's `run`: `config.behavior` picks how it ends."""

import json
import os
import time

from jaxmethods.train import loop


def run(config, workdir: str) -> dict:
    behavior = config.behavior
    if behavior == "nan":
        raise loop.NonFiniteLossError("non-finite loss (nan) at step 3; last good checkpoint: none")
    if behavior == "save_fail":
        raise loop.SaveFailedError("checkpoint of step 4 was not written: disk full")
    if behavior == "empty":
        raise ValueError("data/train.jsonl: no training examples")
    if behavior == "preempt":
        raise loop.Preempted(5)
    if behavior == "bug":
        raise KeyError("internal")
    if behavior == "wait":  # hold the workdir until the test creates `release`
        open(os.path.join(workdir, "started"), "w").close()
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(workdir, "release")) and time.time() < deadline:
            time.sleep(0.05)
    with open(os.path.join(workdir, ".lock")) as f:
        holder = json.load(f)["pid"]
    return {"loss": 1.0, "lock_pid": holder, "pid": os.getpid()}
