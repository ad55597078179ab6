"""`make serve` in small: the Procfile under honcho, two web processes and two Celery workers sharing one database and Redis."""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from glow.accounts.services import api_key_create
from tests.integration.conftest import ROOT, START_TIMEOUT, LiveProcess, free_port
from tests.integration.sse import frames

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

EXPECTED = ["GenerationProgressEvent", "GenerationSavedEvent", "GenerationCompleteEvent"]
SSE = {"Accept": "text/event-stream"}


def port_pair() -> int:
    """A port P with P+1 free too: honcho gives web.1 the base port and web.2 the next one."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    pytest.fail("No two consecutive free ports.")


def wait_until(ready, what: str, honcho: LiveProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        honcho.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready in {START_TIMEOUT} s:\n{honcho.log()[-4000:]}")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def served(services_env, tmp_path):
    """The Procfile's processes exactly as `make serve WEB=2 WORKERS=2` starts them."""
    port = port_pair()
    bin_dir = str(Path(sys.executable).parent)
    env = {**services_env, "PATH": f"{bin_dir}{os.pathsep}{services_env.get('PATH', '')}"}
    honcho = LiveProcess(
        "honcho",
        [
            sys.executable,
            "-m",
            "honcho",
            "start",
            "-f",
            str(ROOT / "Procfile"),
            "-p",
            str(port),
            "-c",
            "web=2,worker=2",
        ],
        env,
        tmp_path,
    )
    urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
    try:
        wait_until(lambda: all(answers(url) for url in urls), "Both web processes", honcho)
        wait_until(lambda: honcho.log().count(" ready.") >= 2, "Both Celery workers", honcho)
        yield urls, honcho
    finally:
        honcho.stop()
    # honcho stops its processes on SIGTERM: nothing answers afterwards.
    assert not any(answers(url) for url in urls)


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{url}/api/v5/artifacts", headers={"X-Api-Key": key}, timeout=30)


def test_two_web_processes_and_two_workers_share_data_and_events(served, org_admin):
    (url_1, url_2), honcho = served
    key = api_key_create(profile=org_admin).plaintext
    with client(url_1, key) as web_1, client(url_2, key) as web_2:
        for url in (url_1, url_2):
            health = httpx.get(f"{url}/healthz", timeout=5).json()
            assert health["status"] == "ok", health

        # A row written through one process is read through the other, both ways.
        created = web_1.post("/persona/publish", json={"data": {"title": "Smoke persona"}})
        assert created.status_code == 200, created.text
        persona_id = created.json()["id"]
        read = web_2.post("/persona/get", json={"persona_id": persona_id})
        assert read.status_code == 200, read.text
        assert read.json()["title"] == "Smoke persona"
        renamed = web_2.post("/persona/title", json={"persona_id": persona_id, "title": "Renamed"})
        assert renamed.status_code == 200, renamed.text
        assert web_1.post("/persona/get", json={"persona_id": persona_id}).json()["title"] == (
            "Renamed"
        )

        # A watcher on web 1 receives what a worker does for a generation triggered on web 2.
        triggered = web_2.post(
            "/persona/generate", json={"instructions": ["A worried student, intensity 5"]}
        )
        assert triggered.status_code == 200, triggered.text
        run_id = triggered.json()["run_id"]
        received = []

        def watch() -> None:
            with web_1.stream(
                "GET", "/persona/watch", params={"run_id": run_id}, headers=SSE
            ) as stream:
                assert stream.status_code == 200
                received.extend(frames(stream.iter_lines()))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        watcher.join(timeout=30)
        assert not watcher.is_alive(), f"The stream did not end:\n{honcho.log()[-4000:]}"
    assert [frame.event for frame in received] == EXPECTED
    assert [frame.data["seq"] for frame in received] == [1, 2, 3]
    assert all(frame.data["run_id"] == run_id for frame in received)
    # Taken from the broker by one of the Procfile's workers (honcho prefixes each line with the
    # process that wrote it), not run by a web process.
    assert re.search(
        r"worker\.[12] +\|.*Task system\.generate_artifact\[[^]]+\] received", honcho.log()
    )


def test_a_watcher_on_one_web_process_sees_a_batched_test_run_by_the_workers(served, org_admin):
    """A test of concurrency 16 runs its four cells as one batch in a worker, whose events go to
    Redis as one message: a group watcher on the other web process gets every one of them live."""
    from glow.accounts.tests.factories import DepartmentFactory
    from tests_app.tests.conftest import Catalog

    (url_1, url_2), honcho = served
    catalog = Catalog(
        org_admin.organization, DepartmentFactory(organization=org_admin.organization)
    )
    key = api_key_create(profile=org_admin).plaintext
    received = []
    with client(url_1, key) as web_1, client(url_2, key) as web_2:
        started = web_2.post("/test/start", json=catalog.start_body(concurrency=16))
        assert started.status_code == 200, started.text
        group_id = started.json()["group_id"]

        def watch() -> None:
            with web_1.stream(
                "GET", "/test/watch", params={"group_id": group_id, "lastEventId": 0}, headers=SSE
            ) as stream:
                assert stream.status_code == 200
                for frame in frames(stream.iter_lines()):
                    received.append(frame)
                    if frame.event == "TestProgressEvent" and frame.data["finished"]:
                        return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        watcher.join(timeout=30)
        assert not watcher.is_alive(), f"The test did not finish:\n{honcho.log()[-4000:]}"
    completes = [frame for frame in received if frame.event == "GenerationCompleteEvent"]
    assert len({frame.data["invocation_id"] for frame in completes}) == 4
    assert all(frame.data["group_id"] == group_id for frame in received)
    by_run: dict[str, list[int]] = {}
    for frame in received:
        by_run.setdefault(frame.data["run_id"], []).append(frame.data["seq"])
    assert all(seqs == sorted(seqs) for seqs in by_run.values())
