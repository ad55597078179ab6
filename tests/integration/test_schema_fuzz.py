"""Every op of the OpenAPI schema against a live server: schemathesis fuzzing, then real demo rows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from glow.accounts.models import Profile
from glow.accounts.services import api_key_create
from tests.integration.conftest import LiveProcess, free_port

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# A fixed budget per op keeps the run bounded and its seed keeps it repeatable.
MAX_EXAMPLES = int(os.environ.get("GLOW_FUZZ_EXAMPLES", "3"))
# Every check but negative_data_rejection: the schema is exact, so a schema-valid body is never
# refused with 400 (positive_data_acceptance) and a 405 names only real methods.
CHECKS = os.environ.get("GLOW_FUZZ_CHECKS", "all")
# The coverage phase (every method, every boundary) takes ~13 minutes over every op: opt in.
PHASES = os.environ.get("GLOW_FUZZ_PHASES", "examples,fuzzing")
# Second spellings of the same views (file_download for file/download, ...) add time, not coverage.
ALIASES = r"/((file|text|image|audio|video)_(download|preview)|file_upload|(file|audio)/upload)$"
SEED = 20261122

# 422 is a row's state machine refusing (DESIGN section 3: a completed test does not stop
# again), which no request schema can express; every other refusal of valid data fails.
CONFIG = """
[auth.openapi.ApiKeyHeader]
api_key = "${GLOW_FUZZ_KEY}"

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
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
    # Read here, not by schemathesis: the schema takes seconds to build, past its 10 s load timeout
    # on a busy machine.
    document = tmp_path / "schema.json"
    document.write_bytes(
        httpx.get(f"{url}/api/v5/schema", params={"format": "json"}, timeout=120).content
    )
    started = time.monotonic()
    result = subprocess.run(
        [
            schemathesis,
            "--config-file",
            str(config),
            "run",
            str(document),
            "--url",
            url,
            "--checks",
            CHECKS,
            "--exclude-checks",
            "negative_data_rejection",
            "--workers",
            "1",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--phases",
            PHASES,
            "--exclude-path-regex",
            ALIASES,
            "--request-timeout",
            "20",
        ],
        env={
            **os.environ,
            "GLOW_FUZZ_KEY": key,
            "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        },
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


def _row_ids(client: httpx.Client, families: list[str]) -> dict[str, str]:
    """One real id per request key (`persona_id`, `chat_id`, ...), read from the demo rows."""
    ids: dict[str, str] = {}

    def keep(row: dict, **names: str) -> None:
        for key, value in row.items():
            if key.endswith("_id") and isinstance(value, str):
                ids.setdefault(key, value)
        for key, source in names.items():
            if row.get(source):
                ids.setdefault(key, row[source])

    def answer(op: str, body: dict) -> dict:
        response = client.post(f"/api/v5/artifacts/{op}", json=body)
        assert response.status_code == 200, (op, response.text)
        return response.json()

    for family in families:
        found = answer(f"{family}/search", {"page_size": 3})
        for value in found.values():
            for row in value if isinstance(value, list) else []:
                keep(row, **{f"{family}_id": "id"})
    ids["benchmark_id"] = ids["test_id"]
    bundle = answer("attempt/get", {"attempt_id": ids["attempt_id"]})
    keep(bundle["chat"])
    invocation = answer("invocation/get", {"invocation_id": ids["invocation_id"]})
    keep(invocation["grade"] or {})
    keep(invocation["tool_calls"][0] if invocation["tool_calls"] else {})
    ids["key_id"] = invocation["key_ids"][0]
    session = answer("system/sessions", {})["sessions"][0]
    keep(session, target_session_id="session_id")
    group = answer("system/session", {"session_id": session["session_id"]})["groups"][0]
    keep(answer("system/group", {"group_id": group["group_id"]})["runs"][0])
    keep(answer("attempt/export", {"view": "dashboard"}))
    return ids


def test_ops_on_demo_rows_answer_their_documented_bodies(fuzz_server):
    """The fuzzer seldom names a real row, so most of its answers are 400 and 404. Here every op
    whose required keys are ids gets real ones, and its answer is checked like the fuzzer's."""
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    url, server = fuzz_server
    call_command("glow_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    key = api_key_create(profile=Profile.objects.get(user__username="admin")).plaintext
    headers = {"X-Api-Key": key}
    # Loaded once, past schemathesis's own 10 s timeout (see test_every_op_survives_schemathesis).
    document = httpx.get(f"{url}/api/v5/schema", params={"format": "json"}, timeout=120).json()
    schema = schemathesis.openapi.from_dict(document)
    components = document["components"]["schemas"]
    paths = document["paths"]
    families = sorted({path.split("/")[4] for path in paths if path.endswith("/search")})
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        ids = _row_ids(client, families)

    answered, failures = {}, []
    for path, item in paths.items():
        body_schema = (
            item.get("post", {}).get("requestBody", {}).get("content", {}).get("application/json")
        )
        # No JSON body: uploads (multipart) and ops without fields; watch streams until its run ends.
        if body_schema is None or path.endswith("/watch"):
            continue
        shape = components[body_schema["schema"]["$ref"].rsplit("/", 1)[-1]]
        body = {name: ids[name] for name in shape["properties"] if name in ids and name != "id"}
        if not body or not set(shape.get("required", [])) <= set(ids):
            continue
        case = schema[path]["POST"].Case(body=body, media_type="application/json")
        response = case.call(base_url=url, headers=headers, timeout=30)
        answered[path] = response.status_code
        try:
            case.validate_response(
                response,
                checks=[
                    response_schema_conformance,
                    status_code_conformance,
                    content_type_conformance,
                ],
            )
        except BaseException as failure:  # schemathesis raises a group of failures
            failures.append(f"{path} {response.status_code}:\n{failure}")
    statuses = sorted(Counter(answered.values()).items())
    print(f"demo rows: {len(answered)} ops called, statuses {statuses}")
    assert not failures, "\n\n".join(failures)[:30000]
    assert "Internal Server Error" not in server.log(), server.log()[-6000:]
    # The ids were real: each family with demo rows had its get find one.
    gets = {path: status for path, status in answered.items() if path.endswith("/get")}
    with_rows = [name for name in [*families, "benchmark"] if f"{name}_id" in ids]
    assert gets == {f"/api/v5/artifacts/{name}/get": 200 for name in with_rows}, gets
