"""enqueue: tasks run after commit (inline, on a worker thread, or through the broker), never before."""

from __future__ import annotations

import threading

import pytest
from django.db import transaction

from glow.celery import app
from glow.core import tasks

calls: list[tuple] = []


@app.task(name="tests.framework.record")
def record(value, *, extra=None):
    calls.append((value, extra, threading.current_thread().name))
    if value == "boom":
        raise RuntimeError("task failed")


@pytest.fixture(autouse=True)
def _clear_calls():
    calls.clear()


@pytest.mark.django_db
def test_inline_outside_a_transaction_runs_at_once():
    tasks.enqueue(record, 1, extra="x")
    assert calls == [(1, "x", threading.current_thread().name)]


@pytest.mark.django_db
def test_inline_waits_for_the_outermost_block_to_commit():
    with transaction.atomic():
        with transaction.atomic():
            tasks.enqueue(record, "inner")
        assert calls == []  # an inner savepoint is not a commit
    assert [call[0] for call in calls] == ["inner"]


@pytest.mark.django_db
def test_inline_rolled_back_work_enqueues_nothing():
    with pytest.raises(ValueError), transaction.atomic():
        tasks.enqueue(record, "never")
        raise ValueError("roll back")
    with transaction.atomic():
        try:
            with transaction.atomic():
                tasks.enqueue(record, "rolled back savepoint")
                raise ValueError
        except ValueError:
            pass
        tasks.enqueue(record, "kept")
    assert [call[0] for call in calls] == ["kept"]


@pytest.mark.django_db
def test_inline_exceptions_propagate_to_the_caller():
    with pytest.raises(RuntimeError, match="task failed"), transaction.atomic():
        tasks.enqueue(record, "boom")


@pytest.mark.django_db
def test_thread_mode_runs_off_the_caller_thread_after_commit(
    settings, django_capture_on_commit_callbacks
):
    settings.GLOW_TASK_MODE = "thread"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.enqueue(record, "threaded")
    assert calls == []  # nothing before the commit
    for callback in callbacks:
        callback()
    tasks.wait_for_threads()
    assert len(calls) == 1
    value, _, thread_name = calls[0]
    assert value == "threaded"
    assert thread_name.startswith("glow-task")


@pytest.mark.django_db
def test_thread_mode_logs_a_failure_instead_of_raising(
    settings, django_capture_on_commit_callbacks, caplog
):
    settings.GLOW_TASK_MODE = "thread"
    with django_capture_on_commit_callbacks(execute=True):
        tasks.enqueue(record, "boom")
    tasks.wait_for_threads()
    assert "tests.framework.record failed" in caplog.text


@pytest.mark.django_db
def test_celery_mode_sends_to_the_broker_on_commit(
    settings, django_capture_on_commit_callbacks, monkeypatch
):
    settings.GLOW_TASK_MODE = "celery"
    sent = []
    monkeypatch.setattr(
        record, "apply_async", lambda args=None, kwargs=None: sent.append((args, kwargs))
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.enqueue(record, 7, extra="y")
    assert sent == []
    for callback in callbacks:
        callback()
    assert sent == [((7,), {"extra": "y"})]
    assert calls == []


def test_unknown_mode_is_refused(settings):
    settings.GLOW_TASK_MODE = "carrier-pigeon"
    with pytest.raises(ValueError, match="GLOW_TASK_MODE"):
        tasks.enqueue(record, 1)
