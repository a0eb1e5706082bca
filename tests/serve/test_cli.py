"""`python -m jaxmethods.serve` as a process: argument errors, and (slow) start, answer, SIGTERM,
graceful exit 0."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from llm_testing import make_tiny_checkpoint

from jaxmethods.serve import parse_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_arguments_are_checked():
    args = parse_args(["--model", "some/model"])
    assert (args.port, args.max_batch_size, args.max_wait_ms) == (8000, 32, 10.0)
    with pytest.raises(SystemExit):
        parse_args(["--model", "m", "--max-batch-size", "0"])
    with pytest.raises(SystemExit):
        parse_args(["--port", "1"])  # --model is required


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_process_serves_then_exits_cleanly_on_sigterm(tmp_path):
    folder = make_tiny_checkpoint(str(tmp_path / "model"))
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxmethods.serve", "--model", folder, "--port", str(port),
         "--served-model-name", "tiny", "--max-batch-size", "4"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        body = {
            "model": "tiny",
            "messages": [{"role": "user", "content": "a kind reply"}],
            "max_tokens": 5,
            "temperature": 0,
        }
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=120)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
