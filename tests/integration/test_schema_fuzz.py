"""Schema-driven fuzzing: schemathesis against every op of the OpenAPI schema on a live server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from glow.accounts.models import Profile
from glow.accounts.services import api_key_create
from tests.integration.conftest import LiveProcess, free_port

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# A fixed budget per op keeps the run bounded and its seed keeps it repeatable.
MAX_EXAMPLES = int(os.environ.get("GLOW_FUZZ_EXAMPLES", "2"))
CHECKS = os.environ.get(
    "GLOW_FUZZ_CHECKS",
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance",
)
# Second spellings of the same views (file_download for file/download, ...) add time, not coverage.
ALIASES = r"/((file|text|image|audio|video)_(download|preview)|file_upload|(file|audio)/upload)$"
SEED = 20261122

CONFIG = """
[auth.openapi.ApiKeyHeader]
api_key = "${GLOW_FUZZ_KEY}"
"""


@pytest.fixture
def fuzz_server(services_env, tmp_path):
    """A server of its own: rate limits off (the fuzzer is one key making thousands of calls)."""
    env = {
        **services_env,
        "GLOW_THROTTLE_READ": "1000000/min",
        "GLOW_THROTTLE_AI": "1000000/min",
        "GLOW_THROTTLE_GENERATE": "1000000/min",
    }
    port = free_port()
    server = LiveProcess(
        "uvicorn-fuzz",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "glow.asgi:application",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env,
        tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        server.check_alive()
        try:
            httpx.get(f"{url}/healthz", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                pytest.fail(server.log())
            time.sleep(0.2)
    yield url, server
    server.stop()


def test_every_op_survives_schemathesis(fuzz_server, tmp_path):
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if schemathesis is None:
        pytest.skip("schemathesis is not installed (it is in the dev extra).")
    url, server = fuzz_server
    call_command("glow_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    key = api_key_create(profile=Profile.objects.get(user__username="admin")).plaintext
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    started = time.monotonic()
    result = subprocess.run(
        [
            schemathesis,
            "--config-file",
            str(config),
            "run",
            f"{url}/api/v5/schema",
            # Every op is held to no server errors and to documented statuses, content types and
            # bodies (errors included). Open (issue 12): "exactly one of" request rules
            # (home_id | practice_id, draft_id | data) are not in the schema, so valid-looking
            # bodies may be refused and positive_data_acceptance stays off.
            "--checks",
            CHECKS,
            "--workers",
            "1",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--phases",
            "examples,fuzzing",
            "--exclude-path-regex",
            ALIASES,
            "--request-timeout",
            "20",
        ],
        env={**os.environ, "GLOW_FUZZ_KEY": key},
        capture_output=True,
        text=True,
        timeout=1500,
    )
    elapsed = time.monotonic() - started
    output = result.stdout[-30000:]
    summary = next(
        (line.strip() for line in reversed(result.stdout.splitlines()) if "generated" in line), ""
    )
    print(f"schemathesis: {summary} in {elapsed:.0f} s")
    server_errors = server.log().count("Internal Server Error")
    assert server_errors == 0, server.log()[-6000:]
    assert result.returncode == 0, output
