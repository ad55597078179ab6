"""The books' writes: session windowing, client kinds, model_call's exact usage and cost through
the real openai client, failures and cancellation, counter repair, and the audited export."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from glow.ai import CompletionRequest, ProviderError, ProviderTimeout, StructuredOutputError, Usage
from glow.catalog.tests.factories import AIModelFactory
from glow.core.models import Upload
from system import exports, gateway, ledger
from system.models import ClientKind, Group, Run, RunStatus, Session, TimelineEvent
from system.tests.factories import books, sign_in
from tests.support.fakeserver import Delay, FakeOpenAIServer, HTTPFailure, Reply

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}


def _run(profile, *, model=None, kind="persona_reply") -> Run:
    session = ledger.session_touch(actor=profile, client_kind="api", auth="api_key")
    group = ledger.group_create(actor=profile, session=session, family="attempt", name="Chat")
    return ledger.run_create(group=group, kind=kind, model=model)


def _ask(text="Why was the midterm so hard?", model="", **fields) -> CompletionRequest:
    # An empty model name means "the run's model", as model_call resolves it.
    return CompletionRequest(messages=[{"role": "user", "content": text}], model=model, **fields)


# -- sessions -----------------------------------------------------------------------------------


def test_a_session_lasts_until_thirty_idle_minutes(learner):
    start = timezone.now()
    first = ledger.session_touch(actor=learner, client_kind="api", auth="api_key", now=start)
    later = start + timedelta(minutes=29)
    assert (
        ledger.session_touch(actor=learner, client_kind="api", auth="api_key", now=later) == first
    )
    # Idle is measured from the last request, not from the start.
    still = later + timedelta(minutes=29)
    assert (
        ledger.session_touch(actor=learner, client_kind="api", auth="api_key", now=still) == first
    )

    after_break = still + timedelta(minutes=31)
    second = ledger.session_touch(actor=learner, client_kind="api", auth="api_key", now=after_break)

    assert second != first
    first.refresh_from_db()
    assert first.active is False
    assert second.active is True
    assert Session.objects.filter(profile=learner).count() == 2


def test_the_idle_window_is_a_setting(learner, settings):
    settings.GLOW_SESSION_IDLE_MINUTES = 5
    start = timezone.now()
    first = ledger.session_touch(actor=learner, client_kind="api", auth="api_key", now=start)
    again = ledger.session_touch(
        actor=learner, client_kind="api", auth="api_key", now=start + timedelta(minutes=6)
    )
    assert again != first


def test_clients_of_one_person_keep_separate_sessions(learner):
    api = ledger.session_touch(actor=learner, client_kind="api", auth="api_key")
    cli = ledger.session_touch(actor=learner, client_kind="cli", auth="api_key")
    assert api != cli
    assert ledger.session_touch(actor=learner, client_kind="api", auth="api_key") == api


@pytest.mark.parametrize(
    ("auth", "mcp", "user_agent", "kind"),
    [
        ("api_key", True, "glow-cli/1.0", ClientKind.MCP),
        ("api_key", False, "glow-cli/0.1 (linux)", ClientKind.CLI),
        ("session", False, "Mozilla/5.0", ClientKind.BROWSER),
        ("api_key", False, "python-httpx/0.27", ClientKind.API),
        ("api_key", False, "", ClientKind.API),
    ],
)
def test_client_kind_of(auth, mcp, user_agent, kind):
    assert ledger.client_kind_of(auth=auth, mcp=mcp, user_agent=user_agent) == kind


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"HTTP_X_MCP": "1"}, ClientKind.MCP),
        ({"HTTP_USER_AGENT": "glow-cli/1.0"}, ClientKind.CLI),
        ({"HTTP_USER_AGENT": "curl/8.5"}, ClientKind.API),
    ],
)
def test_api_requests_record_their_client_kind(make_client, learner, headers, kind):
    response = make_client(learner).op("system/session", {}, **headers)

    assert response.status_code == 200
    assert response.json()["client_kind"] == kind
    assert Session.objects.get(pk=response.json()["session_id"]).client_kind == kind


def test_a_signed_in_browser_gets_a_browser_session(client, learner):
    sign_in(client, learner)

    response = client.post("/api/v5/artifacts/system/session", {}, content_type="application/json")

    assert response.status_code == 200
    session = Session.objects.get(pk=response.json()["session_id"])
    assert (session.client_kind, session.auth) == (ClientKind.BROWSER, "session")


# -- cost arithmetic ----------------------------------------------------------------------------


def test_cost_is_exact_decimal_from_prices_per_million(learner):
    model = AIModelFactory(
        organization=learner.organization,
        input_price_per_million=Decimal("2.50"),
        output_price_per_million=Decimal("10.00"),
    )
    run = _run(learner, model=model)

    result = gateway.model_call(run=run, request=_ask(task="persona_reply", context={}))

    run.refresh_from_db()
    expected = (
        Decimal(result.usage.input_tokens) * Decimal("2.50")
        + Decimal(result.usage.output_tokens) * Decimal("10.00")
    ) / Decimal(1_000_000)
    assert isinstance(run.cost, Decimal)
    assert run.cost == expected.quantize(Decimal("0.000001"))
    assert (run.input_tokens, run.output_tokens) == (
        result.usage.input_tokens,
        result.usage.output_tokens,
    )
    assert run.total_tokens == result.usage.total_tokens
    assert run.status == RunStatus.SUCCEEDED
    assert run.latency_ms is not None


def test_group_and_session_counters_add_up_their_runs(learner):
    model = AIModelFactory(organization=learner.organization)
    session = books(profile=learner, model=model, groups=2, runs=3)

    runs = Run.objects.filter(session=session)
    assert session.run_count == 6
    assert session.group_count == 2
    assert session.total_tokens == sum(run.total_tokens for run in runs)
    assert session.total_cost == sum((run.cost for run in runs), Decimal("0"))
    for group in Group.objects.filter(session=session):
        mine = runs.filter(group=group)
        assert group.run_count == 3
        assert group.total_cost == sum((run.cost for run in mine), Decimal("0"))
        assert group.first_run_at == min(run.started_at for run in mine)
        assert group.last_run_at == max(run.finished_at for run in mine)


# -- the real openai client path ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_openai():
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def openai_model(fake_openai, learner, monkeypatch, settings):
    settings.GLOW_OPENAI_TIMEOUT = 5.0
    settings.GLOW_OPENAI_MAX_RETRIES = 1
    monkeypatch.setenv("GLOW_TEST_OPENAI_KEY", "sk-test-books")
    return AIModelFactory(
        organization=learner.organization,
        provider="openai",
        provider_model="gpt-books",
        base_url=fake_openai.base_url,
        api_key_env="GLOW_TEST_OPENAI_KEY",
        input_price_per_million=Decimal("3.00"),
        output_price_per_million=Decimal("15.00"),
    )


def test_a_whole_openai_answer_is_booked_exactly(fake_openai, openai_model, learner):
    fake_openai.enqueue(Reply("Three chapters, mostly proofs.", usage=Usage(1200, 345)))
    run = _run(learner, model=openai_model)

    result = gateway.model_call(run=run, request=_ask())

    run.refresh_from_db()
    assert result.text == "Three chapters, mostly proofs."
    assert (run.input_tokens, run.output_tokens, run.total_tokens) == (1200, 345, 1545)
    # 1200 x $3 / M + 345 x $15 / M = 0.0036 + 0.005175
    assert run.cost == Decimal("0.008775")
    assert run.status == RunStatus.SUCCEEDED
    assert run.output == "Three chapters, mostly proofs."
    assert run.messages == [{"role": "user", "content": "Why was the midterm so hard?"}]
    sent = fake_openai.requests[-1]
    assert sent.body["model"] == "gpt-books"
    assert sent.headers["Authorization"] == "Bearer sk-test-books"
    session = Session.objects.get(pk=run.session_id)
    assert (session.total_tokens, session.total_cost, session.run_count) == (
        1545,
        Decimal("0.008775"),
        1,
    )


def test_a_streamed_openai_answer_is_booked_exactly(fake_openai, openai_model, learner):
    fake_openai.enqueue(Reply("You can ask for a regrade in writing.", usage=Usage(50, 9)))
    run = _run(learner, model=openai_model)
    deltas = []

    result = gateway.model_call(run=run, request=_ask(), stream=True, on_delta=deltas.append)

    run.refresh_from_db()
    assert "".join(deltas) == "You can ask for a regrade in writing." == run.output
    assert len(deltas) > 1
    assert (run.input_tokens, run.output_tokens) == (50, 9)
    assert run.cost == Decimal("0.000285")
    assert result.usage == Usage(50, 9)
    assert fake_openai.requests[-1].body["stream"] is True


def test_a_server_error_then_success_books_one_successful_run(fake_openai, openai_model, learner):
    fake_openai.enqueue(HTTPFailure(500), Reply("Recovered.", usage=Usage(10, 2)))
    run = _run(learner, model=openai_model)
    before = len(fake_openai.requests)

    gateway.model_call(run=run, request=_ask())

    run.refresh_from_db()
    assert len(fake_openai.requests) - before == 2
    assert run.status == RunStatus.SUCCEEDED
    assert run.error == ""
    assert (run.input_tokens, run.output_tokens, run.cost) == (10, 2, Decimal("0.000060"))


def test_errors_past_the_retries_fail_the_run_and_keep_the_error(
    fake_openai, openai_model, learner
):
    fake_openai.enqueue(HTTPFailure(500, "overloaded"), HTTPFailure(500, "overloaded"))
    run = _run(learner, model=openai_model)

    with pytest.raises(ProviderError):
        gateway.model_call(run=run, request=_ask())

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "HTTP 500" in run.error and "overloaded" in run.error
    assert run.finished_at is not None
    assert (run.total_tokens, run.cost) == (0, Decimal("0"))
    assert Session.objects.get(pk=run.session_id).run_count == 1


def test_a_timeout_fails_the_run(fake_openai, openai_model, learner, settings):
    settings.GLOW_OPENAI_TIMEOUT = 0.3
    settings.GLOW_OPENAI_MAX_RETRIES = 0
    fake_openai.enqueue(Delay(2.0, then=Reply("too late")))
    run = _run(learner, model=openai_model)

    with pytest.raises(ProviderTimeout):
        gateway.model_call(run=run, request=_ask())

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "did not answer in time" in run.error


def test_malformed_json_is_repaired_once_and_both_calls_are_billed(
    fake_openai, openai_model, learner
):
    fake_openai.enqueue(
        Reply('{"score": ', usage=Usage(20, 3)), Reply('{"score": 4}', usage=Usage(30, 4))
    )
    run = _run(learner, model=openai_model, kind="grade")

    result = gateway.model_call(run=run, request=_ask(json_schema=SCHEMA))

    run.refresh_from_db()
    assert result.data == {"score": 4}
    assert (run.input_tokens, run.output_tokens) == (50, 7)
    assert run.cost == Decimal("0.000255")
    assert run.status == RunStatus.SUCCEEDED


def test_calls_naming_no_model_use_the_model_glow_ai_model_names_with_its_pinned_mode(
    fake_openai, openai_model, learner, outsider, settings
):
    settings.GLOW_AI_MODEL = openai_model.title
    openai_model.structured_output = "json_object"
    openai_model.save()
    fake_openai.enqueue(Reply('{"score": 2}', usage=Usage(10, 2)))

    run = _run(learner, kind="grade")
    result = gateway.model_call(run=run, request=_ask(json_schema=SCHEMA))

    assert run.model == openai_model and run.provider_model == "gpt-books"
    assert result.data == {"score": 2}
    sent = fake_openai.requests[-1].body
    assert sent["model"] == "gpt-books"
    assert sent["response_format"] == {"type": "json_object"}
    # Another organization has no Model of that title: its calls stay on the settings' provider.
    assert _run(outsider).model is None


def test_malformed_json_twice_fails_the_structured_run(fake_openai, openai_model, learner):
    fake_openai.enqueue(Reply('{"score": '), Reply("no json here"))
    run = _run(learner, model=openai_model, kind="grade")

    with pytest.raises(StructuredOutputError):
        gateway.model_call(run=run, request=_ask(json_schema=SCHEMA))

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "JSON schema" in run.error


def test_cancel_mid_stream_keeps_the_partial_text(fake_openai, openai_model, learner):
    words = " ".join(f"word{n}" for n in range(40))
    fake_openai.enqueue(Reply(words, chunk_delay=0.03))
    run = _run(learner, model=openai_model)
    received = []

    def on_delta(delta: str) -> None:
        received.append(delta)
        if len(received) == 3:
            ledger.run_cancel(run=run)

    result = gateway.model_call(run=run, request=_ask(), stream=True, on_delta=on_delta)

    run.refresh_from_db()
    assert result.finish_reason == "cancelled"
    assert run.status == RunStatus.CANCELLED
    assert run.cancel_requested is True
    assert run.output == result.text == "".join(received)
    assert 3 <= len(received) < 40
    assert words.startswith(run.output)
    assert run.output_tokens > 0  # the partial answer is still billed


def test_the_cancel_flag_stops_a_local_stream_between_chunks(learner, monkeypatch):
    monkeypatch.setattr(gateway, "CANCEL_POLL_SECONDS", 0)
    run = _run(learner)
    received = []

    def on_delta(delta: str) -> None:
        received.append(delta)
        if len(received) == 2:
            # What attempt/stop does from another request: only the flag is written.
            Run.objects.filter(pk=run.pk).update(cancel_requested=True)

    text = " ".join(f"word{n}" for n in range(30))
    result = gateway.model_call(
        run=run, request=_ask(text, model="echo"), stream=True, on_delta=on_delta
    )

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.output == result.text == "".join(received)
    assert len(received) == 2


def test_a_failing_delta_consumer_fails_the_run_instead_of_leaving_it_running(learner):
    run = _run(learner)

    def on_delta(delta: str) -> None:
        raise RuntimeError("socket closed")

    with pytest.raises(RuntimeError):
        gateway.model_call(run=run, request=_ask(model="echo"), stream=True, on_delta=on_delta)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "RuntimeError: socket closed"


def test_finishing_twice_counts_once(learner):
    run = _run(learner)
    gateway.model_call(run=run, request=_ask(model="echo"))

    ledger.run_finish(run=run, status=RunStatus.FAILED, error="late duplicate")

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert Group.objects.get(pk=run.group_id).run_count == 1


# -- counters repair ----------------------------------------------------------------------------


def test_refresh_repairs_drifted_counters_from_the_runs(learner):
    model = AIModelFactory(organization=learner.organization)
    session = books(profile=learner, model=model, groups=2, runs=2)
    truth_session = Session.objects.values(
        "group_count", "run_count", "total_tokens", "total_cost"
    ).get(pk=session.pk)
    truth_groups = list(
        Group.objects.filter(session=session)
        .order_by("created_at")
        .values("run_count", "total_tokens", "total_cost", "first_run_at", "last_run_at")
    )
    Session.objects.filter(pk=session.pk).update(
        run_count=99, total_tokens=1, total_cost=Decimal("5"), group_count=0
    )
    Group.objects.filter(session=session).update(run_count=0, total_tokens=7, last_run_at=None)

    assert ledger.session_counters_refresh(sessions=Session.objects.filter(pk=session.pk)) == 1

    assert (
        Session.objects.values("group_count", "run_count", "total_tokens", "total_cost").get(
            pk=session.pk
        )
        == truth_session
    )
    assert (
        list(
            Group.objects.filter(session=session)
            .order_by("created_at")
            .values("run_count", "total_tokens", "total_cost", "first_run_at", "last_run_at")
        )
        == truth_groups
    )


# -- export -------------------------------------------------------------------------------------


def test_export_writes_an_audited_zip_of_the_session(learner, org_admin):
    model = AIModelFactory(organization=learner.organization)
    session = books(profile=learner, model=model, groups=2, runs=2)
    audit = ledger.session_touch(actor=org_admin, client_kind="browser", auth="session")

    upload = exports.session_export(actor=org_admin, session=session, audit_session=audit)

    assert upload.mime_type == "application/zip"
    assert upload.owner == org_admin
    archive = zipfile.ZipFile(io.BytesIO(upload.file.read()))
    names = set(archive.namelist())
    assert {"manifest.json", "groups.csv", "runs.csv", "runs.jsonl", "timeline.csv"} <= names
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["session_id"] == str(session.pk)
    assert manifest["files"]["runs.csv"] == 4
    runs = [json.loads(line) for line in archive.read("runs.jsonl").decode().splitlines()]
    assert [run["messages"][0]["role"] for run in runs] == ["user"] * 4
    assert archive.read("groups.csv").decode().count("\n") == 3  # header + 2 groups
    # 2 groups + 4 runs + timeline (2 group.created + 4 starts + 4 ends)
    assert upload.row_count == 2 + 4 + 10
    record = TimelineEvent.objects.get(event_type="session.exported")
    assert (record.actor, record.session, record.entity_id, record.extra_1) == (
        org_admin,
        audit,
        str(session.pk),
        str(upload.pk),
    )
    assert Upload.objects.count() == 1


def test_export_includes_what_other_apps_contribute(learner, org_admin, monkeypatch):
    from glow.core.registry import registry

    session = books(profile=learner, groups=1, runs=1)
    hooks = dict(registry.hooks)
    hooks["session_export"] = [
        lambda actor, session: [exports.ExportFile("attempts.csv", "attempt_id\nA1\nA2\n", 2)]
    ]
    monkeypatch.setattr(registry, "hooks", hooks)

    upload = exports.session_export(actor=org_admin, session=session)

    archive = zipfile.ZipFile(io.BytesIO(upload.file.read()))
    assert archive.read("attempts.csv").decode() == "attempt_id\nA1\nA2\n"
    assert json.loads(archive.read("manifest.json"))["files"]["attempts.csv"] == 2
    assert upload.row_count == 1 + 1 + 3 + 2
