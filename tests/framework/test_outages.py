"""Outages of the database, the broker and the cache: clean 503s, work that still runs, no 500."""

from __future__ import annotations

import json

import pytest
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory
from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import ConnectionError as RedisConnectionError

from glow import urls
from glow.core import errors, selectors, tasks
from glow.core.throttling import GlowRateThrottle
from tests.framework.test_tasks import calls, record

pytestmark = pytest.mark.django_db


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    body = json.loads(response.content)
    assert body["code"] == "service_unavailable"
    assert set(body) == {"detail", "code", "fields"}


@pytest.mark.parametrize(
    "lost",
    [
        OperationalError("terminating connection due to administrator command"),
        InterfaceError("connection already closed"),
    ],
)
def test_an_op_that_loses_the_database_answers_503_in_the_error_shape(
    admin_client, monkeypatch, lost
):
    def gone(**kwargs):
        raise lost

    monkeypatch.setattr(selectors, "artifact_search", gone)
    assert_unavailable(admin_client.op("persona/search"))


def test_a_view_outside_drf_that_loses_the_database_answers_503():
    request = RequestFactory().get("/staff/")
    middleware = errors.DatabaseUnavailableMiddleware(lambda r: None)
    assert_unavailable(middleware.process_exception(request, OperationalError("gone")))
    assert middleware.process_exception(request, ValueError("a bug")) is None


def test_the_500_handler_answers_503_for_a_lost_database_and_500_otherwise():
    request = RequestFactory().get("/staff/")
    try:
        raise OperationalError("gone")  # e.g. a middleware reading the session
    except OperationalError:
        assert_unavailable(urls.handler500(request))
    try:
        raise ValueError("a bug")
    except ValueError:
        assert urls.handler500(RequestFactory().get("/api/v5/x")).status_code == 500


def test_with_the_broker_unreachable_the_task_runs_in_this_process(
    settings, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    settings.GLOW_TASK_MODE = "celery"
    calls.clear()

    def refused(args=None, kwargs=None):
        raise BrokerUnavailable("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(record, "apply_async", refused)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.enqueue(record, "kept", extra="z")
    tasks.wait_for_threads()
    assert [(value, extra) for value, extra, _ in calls] == [("kept", "z")]
    assert calls[0][2].startswith("glow-task")
    assert "The broker is unreachable" in caplog.text


def test_throttles_let_requests_through_when_their_cache_is_down(admin_client, monkeypatch):
    def down(self, request, view):
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(GlowRateThrottle, "get_cache_key", down)
    response = admin_client.op("persona/search")
    assert response.status_code == 200, response.content
