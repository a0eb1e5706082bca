"""How the launcher turns flags and environment variables into `jax.distributed.initialize`
arguments (JAX itself reads neither JAX_NUM_PROCESSES nor JAX_PROCESS_ID)."""

import jax
import pytest

from jaxmethods.train import mesh
from jaxmethods.train.mesh import distributed_args, maybe_initialize_distributed

CLUSTER_VARS = (
    "JAX_COORDINATOR_ADDRESS",
    "JAX_NUM_PROCESSES",
    "JAX_PROCESS_ID",
    "SLURM_NTASKS",
    "TPU_WORKER_HOSTNAMES",
    "OMPI_COMM_WORLD_SIZE",
)


@pytest.fixture
def calls(monkeypatch):
    """Records `jax.distributed.initialize` calls instead of joining a cluster."""
    for var in CLUSTER_VARS:
        monkeypatch.delenv(var, raising=False)
    seen = []
    monkeypatch.setattr(mesh.jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(mesh.jax.distributed, "initialize", lambda **kw: seen.append(kw))
    return seen


def test_environment_is_read_and_flags_win():
    env = {
        "JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234",
        "JAX_NUM_PROCESSES": "4",
        "JAX_PROCESS_ID": "3",
    }
    assert distributed_args(env=env) == {
        "coordinator_address": "10.0.0.1:1234",
        "num_processes": 4,
        "process_id": 3,
    }
    got = distributed_args("host0:99", 8, 5, env=env)
    assert got == {"coordinator_address": "host0:99", "num_processes": 8, "process_id": 5}
    assert distributed_args(env={}) == {}  # left to SLURM / Open MPI / TPU auto-detection
    assert distributed_args(env={"JAX_PROCESS_ID": " 0 "}) == {"process_id": 0}


@pytest.mark.parametrize(
    "args, env, match",
    [
        ((), {"JAX_NUM_PROCESSES": "two"}, "JAX_NUM_PROCESSES='two': expected an integer"),
        (
            (),
            {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
            r"JAX_PROCESS_ID=2: must be in \[0, 2\)",
        ),
        ((None, 2, 5), {}, r"--process_id=5: must be in \[0, 2\) \(--num_processes=2\)"),
        ((None, 0, None), {}, "--num_processes=0: the number of processes must be >= 1"),
        ((None, None, -1), {}, "--process_id=-1: must be >= 0"),
    ],
)
def test_bad_values_name_the_flag_or_variable(args, env, match):
    with pytest.raises(ValueError, match=match):
        distributed_args(*args, env=env)


def test_explicit_arguments_are_passed_to_jax(calls, monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:5555")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    assert maybe_initialize_distributed() is True
    assert calls == [{"coordinator_address": "127.0.0.1:5555", "num_processes": 2, "process_id": 1}]
    assert maybe_initialize_distributed(process_id=0) is True
    assert calls[-1]["process_id"] == 0


def test_partial_arguments_outside_a_scheduler_say_what_is_missing(calls, monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    with pytest.raises(ValueError, match="set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and"):
        maybe_initialize_distributed()
    with pytest.raises(ValueError, match=r"got \{'coordinator_address'.*'num_processes': 2\}"):
        maybe_initialize_distributed(num_processes=2)
    assert calls == []
    # Under SLURM the missing ones are detected by JAX.
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert maybe_initialize_distributed() is True
    assert calls == [{"coordinator_address": "10.0.0.1:1234"}]


def test_schedulers_are_left_to_jax_auto_detection(calls, monkeypatch):
    assert maybe_initialize_distributed() is False and calls == []
    monkeypatch.setenv("SLURM_NTASKS", "16")
    assert maybe_initialize_distributed() is True
    assert calls == [{}]


def test_one_process_initialises_nothing(calls, monkeypatch):
    monkeypatch.setenv("SLURM_NTASKS", "16")
    assert maybe_initialize_distributed(num_processes=1) is False
    assert calls == []
    assert jax.process_count() == 1
