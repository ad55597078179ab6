"""Tests over HTTP as an instructor: start, run, grade, feedback, benchmark, complete, decrypt, stop."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import pytest
from django.apps import apps
from django.db.models import CharField, JSONField, TextField
from django.db.models.functions import Cast

from glow.accounts.tests.factories import DepartmentFactory, ProfileFactory
from glow.catalog.tests.factories import EvalFactory, RubricFactory
from system.ledger import run_create, run_mark_running
from system.models import Event, Group, Run, TimelineEvent
from tests_app.engine import workers
from tests_app.models import (
    Feedback,
    Invocation,
    InvocationStatus,
    SecretKey,
    Test,
    TestGrade,
    ToolCall,
)

pytestmark = pytest.mark.django_db


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["detail"] and {"detail", "code", "fields"} <= set(body)
    if code is not None:
        assert body["code"] == code, body
    return body


def stored_anywhere(text: str) -> bool:
    """Whether any text or JSON column of any table holds `text` (on SQLite and PostgreSQL)."""
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, CharField | TextField):
                rows = model._default_manager.filter(**{f"{field.name}__contains": text})
            elif isinstance(field, JSONField):
                rows = model._default_manager.annotate(
                    as_text=Cast(field.name, output_field=TextField())
                ).filter(as_text__contains=text)
            else:
                continue
            if rows.exists():
                return True
    return False


def start(client, catalog, **overrides) -> dict:
    return ok(client.op("test/start", catalog.start_body(**overrides)))


def start_with_secret(client, catalog, secret: str, *, scenario: int = 0, label: str = "") -> dict:
    """A one-cell test holding one secret; answers the decrypt body for it."""
    started = start(
        client,
        catalog,
        model_ids=[str(catalog.models[1].pk)],
        scenario_ids=[str(catalog.scenarios[scenario].pk)],
        secrets=[{"label": label or "Course tools token", "value": secret}],
    )
    (key_id,) = started["key_ids"]
    return {"invocation_id": started["invocation_id"], "key_id": key_id}


# -- the whole flow -------------------------------------------------------------------------------


def test_a_2x2x1_test_runs_every_cell_grades_it_and_the_group_reports_progress(
    staff_client, catalog
):
    catalog.eval.turns = 2
    catalog.eval.save()
    started = start(staff_client, catalog)
    test = Test.objects.get(pk=started["test_id"])
    assert started["benchmark_id"] == started["test_id"]
    assert started["invocation_count"] == 4
    invocations = list(test.invocations.order_by("position"))
    assert str(invocations[0].pk) == started["invocation_id"]
    # Model-major order, as the axes were given.
    assert [(i.model_id, i.scenario_id) for i in invocations] == [
        (model.pk, scenario.pk) for model in catalog.models for scenario in catalog.scenarios
    ]
    assert {i.status for i in invocations} == {InvocationStatus.SUCCEEDED}
    for invocation in invocations:
        roles = [message["role"] for message in invocation.transcript]
        assert roles == ["agent", "persona"] * catalog.eval.turns
        assert invocation.total_tokens > 0 and invocation.cost > 0
        assert TestGrade.objects.get(invocation=invocation).total_points == 8
    # The agent's first turn uses its tool; the call is recorded and linked from the message.
    calls = ToolCall.objects.filter(invocation=invocations[0])
    assert calls.exists() and calls.first().name == "lookup_policy"
    assert str(calls.first().pk) in invocations[0].transcript[0]["tool_call_ids"]

    group = Group.objects.get(pk=started["group_id"])
    assert group.family == "test" and group.artifact_id == test.pk
    kinds = {run.kind for run in Run.objects.filter(group=group)}
    assert kinds == {"invocation", "agent_turn", "persona_reply", "grade"}
    # 4 envelopes + per cell 2 agent turns, 2 persona replies and a grade.
    assert Run.objects.filter(group=group).count() == 4 + 4 * 5
    progress = list(
        Event.objects.filter(group=group, event_type="TestProgressEvent").order_by("id")
    )
    assert [event.payload["done"] for event in progress] == [1, 2, 3, 4]
    assert progress[-1].payload["finished"] is True
    assert progress[-1].payload["group_id"] == str(group.pk)
    completes = Event.objects.filter(group=group, event_type="GenerationCompleteEvent")
    assert completes.count() == 4

    body = ok(staff_client.op("test/get", {"test_id": started["test_id"]}))
    assert body["finished"] is True and body["counts"]["succeeded"] == 4
    assert body["status"] == "finished"  # every cell ended: the test finished by itself
    assert body["group_id"] == started["group_id"]


def test_grade_full_then_score_then_feedback_then_benchmark_then_complete(staff_client, catalog):
    started = start(staff_client, catalog)
    first, second = Invocation.objects.filter(test_id=started["test_id"]).order_by("position")[:2]

    graded = ok(staff_client.op("test/grade", {"invocation_id": str(first.pk), "full": True}))
    assert graded["score"] == 8 and graded["total_points"] == 8 and graded["full"] is True
    assert graded["percent"] == 100.0 and graded["source"] == "reviewed"
    scored = ok(staff_client.op("test/grade", {"invocation_id": str(second.pk), "score": 3}))
    assert scored["score"] == 3 and scored["full"] is False
    # One grade per invocation: grading again updates it.
    assert TestGrade.objects.filter(invocation=second).count() == 1
    assert scored["grade_id"] == str(TestGrade.objects.get(invocation=second).pk)

    too_high = error(
        staff_client.op("test/grade", {"invocation_id": str(second.pk), "score": 9}), 400
    )
    assert "score" in too_high["fields"]
    assert (
        "score"
        in error(staff_client.op("test/grade", {"invocation_id": str(second.pk)}), 400)["fields"]
    )

    tool_call = ToolCall.objects.filter(invocation=second).first()
    group = catalog.groups[0]
    body = {
        "grade_id": scored["grade_id"],
        "tool_call_id": str(tool_call.pk),
        "standard_group_id": str(group.pk),
        "score": 1,
        "feedback": "Looked up the policy before answering.",
    }
    created = ok(staff_client.op("test/feedback", body))
    assert created["created"] is True and created["score"] == 1
    updated = ok(staff_client.op("test/feedback", {**body, "score": 3, "feedback": "Better."}))
    assert updated["created"] is False and updated["feedback_id"] == created["feedback_id"]
    row = Feedback.objects.get()
    assert (row.score, row.feedback) == (Decimal("3"), "Better.")

    grid = ok(staff_client.op("benchmark/get", {"benchmark_id": started["benchmark_id"]}))
    assert grid == ok(staff_client.op("benchmark/get", {"test_id": started["test_id"]}))
    assert [entry["id"] for entry in grid["axes"]["models"]] == [
        str(model.pk) for model in catalog.models
    ]
    cells = {cell["invocation_id"]: cell for cell in grid["cells"]}
    assert len(cells) == 4
    full_cell, scored_cell = cells[str(first.pk)], cells[str(second.pk)]
    assert (full_cell["score"], full_cell["percent"]) == (8.0, 100.0)
    assert (scored_cell["score"], scored_cell["total_points"], scored_cell["percent"]) == (
        3.0,
        8,
        37.5,
    )
    # Staff feedback on a standard group replaces the grader's figure for that group.
    by_group = {item["standard_group_id"]: item for item in scored_cell["groups"]}
    assert by_group[str(group.pk)]["score"] == 3.0 and by_group[str(group.pk)]["total_points"] == 4
    assert scored_cell["cost"] == str(second.cost) and scored_cell["tokens"] == second.total_tokens
    model_mean = grid["axes"]["models"][0]
    mine = [cell for cell in grid["cells"] if cell["model_id"] == model_mean["id"]]
    assert model_mean["mean_percent"] == round(sum(c["percent"] for c in mine) / len(mine), 1)
    assert grid["means"]["graded_count"] == 4

    done = ok(staff_client.op("test/complete", {"test_id": started["test_id"]}))
    assert done["status"] == "completed" and done["counts"]["completed"] == 4
    again = ok(staff_client.op("test/complete", {"id": started["test_id"]}))
    assert again["completed_at"] == done["completed_at"]
    assert set(
        Invocation.objects.filter(test_id=started["test_id"]).values_list("status", flat=True)
    ) == {InvocationStatus.COMPLETED}

    refused = {
        "test/grade": {"invocation_id": str(first.pk), "score": 1},
        "test/feedback": body,
        "test/stop": {"test_id": started["test_id"]},
        "invocation/run": {"invocation_id": str(first.pk)},
        "invocation/terminate": {"invocation_id": str(first.pk)},
        "invocation/create": {
            "test_id": started["test_id"],
            "model_id": str(catalog.models[0].pk),
            "scenario_id": str(catalog.scenarios[0].pk),
            "agent_id": str(catalog.agents[0].pk),
        },
        "test/title": {"test_id": started["test_id"], "title": "Renamed"},
        "test/publish": {
            "test_id": started["test_id"],
            "version": Test.objects.get(pk=started["test_id"]).version,
            "data": {"title": "X"},
        },
    }
    for op, payload in refused.items():
        error(staff_client.op(op, payload), 422, "test_completed")
    assert TestGrade.objects.get(invocation=first).score == Decimal("8")
    # Reads and the universal archive still work on a completed test.
    assert (
        ok(staff_client.op("benchmark/get", {"test_id": started["test_id"]}))["status"]
        == "completed"
    )
    assert (
        ok(staff_client.op("test/archive", {"test_ids": [started["test_id"]]}))["updated_count"]
        == 1
    )


def test_feedback_checks_the_triple_belongs_together(staff_client, catalog):
    started = start(staff_client, catalog)
    first, second = Invocation.objects.filter(test_id=started["test_id"]).order_by("position")[:2]
    grade = TestGrade.objects.get(invocation=first)
    foreign_call = ToolCall.objects.filter(invocation=second).first()
    body = {
        "grade_id": str(grade.pk),
        "tool_call_id": str(foreign_call.pk),
        "standard_group_id": str(catalog.groups[0].pk),
        "score": 1,
    }
    assert "tool_call_id" in error(staff_client.op("test/feedback", body), 400)["fields"]
    own_call = ToolCall.objects.filter(invocation=first).first()
    other = RubricFactory(organization=catalog.organization).groups.first()
    body.update(tool_call_id=str(own_call.pk), standard_group_id=str(other.pk))
    assert "standard_group_id" in error(staff_client.op("test/feedback", body), 400)["fields"]
    body.update(standard_group_id=str(catalog.groups[0].pk), score=5)
    assert "score" in error(staff_client.op("test/feedback", body), 400)["fields"]
    assert not Feedback.objects.exists()


# -- start validation -----------------------------------------------------------------------------


def test_start_names_a_missing_axis_and_unknown_ids(staff_client, catalog, outsider):
    for axis in ("model_ids", "scenario_ids", "agent_ids"):
        body = error(staff_client.op("test/start", catalog.start_body(**{axis: []})), 400)
        assert axis in body["fields"]
    assert "eval_id" in error(staff_client.op("test/start", {"model_ids": []}), 400)["fields"]
    unknown = str(uuid.uuid4())
    body = error(
        staff_client.op(
            "test/start",
            catalog.start_body(scenario_ids=[str(catalog.scenarios[0].pk), unknown]),
        ),
        404,
    )
    assert body["fields"] == {"scenario_ids": [unknown]} and unknown in body["detail"]
    error(staff_client.op("test/start", catalog.start_body(eval_id=unknown)), 404)
    assert not Test.objects.exists()


def test_start_with_an_idempotency_key_answers_the_first_test(staff_client, catalog):
    first = ok(staff_client.op("test/start", catalog.start_body(), HTTP_IDEMPOTENCY_KEY="k-1"))
    again = ok(staff_client.op("test/start", catalog.start_body(), HTTP_IDEMPOTENCY_KEY="k-1"))
    assert again["test_id"] == first["test_id"] and again["invocation_id"] == first["invocation_id"]
    assert Test.objects.count() == 1 and Invocation.objects.count() == 4


def test_learners_may_not_start_or_see_tests(catalog, staff_client, learner, make_client):
    started = start(staff_client, catalog, model_ids=[str(catalog.models[0].pk)])
    client = make_client(learner)
    error(client.op("test/start", catalog.start_body()), 403)
    error(client.op("test/get", {"test_id": started["test_id"]}), 404)
    error(client.op("benchmark/get", {"test_id": started["test_id"]}), 404)
    assert ok(client.op("test/search"))["total_count"] == 0


# -- decrypt --------------------------------------------------------------------------------------


def test_decrypt_answers_only_the_invocations_own_keys_and_audits_each_call(staff_client, catalog):
    secret = "sk-live-9f8e7d6c5b4a-course-tools"
    body = start_with_secret(staff_client, catalog, secret)
    other = start_with_secret(
        staff_client, catalog, "sk-other-0000", scenario=1, label="Another token"
    )

    fresh = ok(staff_client.op("test/decrypt", body))
    assert fresh == {**body, "label": "Course tools token", "plaintext": secret, "cached": False}
    assert ok(staff_client.op("test/decrypt", body))["cached"] is True
    bypassed = ok(staff_client.op("test/decrypt", body, HTTP_X_BYPASS_CACHE="1"))
    assert bypassed["cached"] is False and bypassed["plaintext"] == secret

    foreign = {**body, "key_id": other["key_id"]}
    error(staff_client.op("test/decrypt", foreign), 403, "key_not_in_invocation")

    audit = TimelineEvent.objects.filter(event_type="test.decrypt").order_by("id")
    invocation_id, key_id = body["invocation_id"], body["key_id"]
    assert [(row.entity_id, row.extra_1, row.extra_2) for row in audit] == [
        (invocation_id, key_id, "fresh"),
        (invocation_id, key_id, "cache"),
        (invocation_id, key_id, "fresh"),
    ]
    assert audit[0].actor.pk == staff_client.profile.pk
    # Encrypted at rest, and the plaintext is nowhere in the database.
    assert secret not in SecretKey.objects.get(pk=key_id).ciphertext
    assert stored_anywhere("Course tools token") and not stored_anywhere(secret)


# -- stop -----------------------------------------------------------------------------------------


def test_stop_halts_queued_and_running_cells_and_keeps_finished_ones(staff, staff_client, catalog):
    test = catalog.start_queued(staff, concurrency=2)
    finished = workers.invocation_claim(test_id=test.pk, worker_token="w1")
    workers.invocation_execute(invocation_id=finished)
    in_flight = workers.invocation_claim(test_id=test.pk, worker_token="w2")
    # The cell is mid-turn: its envelope is written and running.
    envelope = run_create(group=test.group, kind="invocation", family="test", artifact_id=in_flight)
    run_mark_running(run=envelope)
    Invocation.objects.filter(pk=in_flight).update(run_id=envelope.pk)

    body = ok(staff_client.op("test/stop", {"test_id": str(test.pk)}))
    assert body["success"] is True and body["stopped_count"] == 3 and body["kept_count"] == 1
    assert body["invocation_id"] == str(in_flight)
    statuses = dict(Invocation.objects.filter(test=test).values_list("pk", "status"))
    assert statuses.pop(finished) == InvocationStatus.SUCCEEDED
    assert set(statuses.values()) == {InvocationStatus.TERMINATED}
    assert TestGrade.objects.filter(invocation_id=finished).exists()
    envelope.refresh_from_db()
    assert envelope.status == "cancelled"
    assert Event.objects.filter(run=envelope, event_type="GenerationErrorEvent").exists()
    test.refresh_from_db()
    assert test.status == "stopped"
    # A runner that was mid-turn notices and writes nothing more.
    assert workers.invocation_execute(invocation_id=in_flight) == InvocationStatus.TERMINATED
    again = ok(staff_client.op("test/stop", {"test_id": str(test.pk)}))
    assert again["stopped_count"] == 0 and again["invocation_id"] is None
    assert "Nothing to stop" in again["message"]


# -- invocation sub-namespace ----------------------------------------------------------------------


def test_invocation_create_run_terminate_trace_get_complete(staff_client, catalog):
    started = start(
        staff_client,
        catalog,
        model_ids=[str(catalog.models[0].pk)],
        scenario_ids=[str(catalog.scenarios[0].pk)],
    )
    first = started["invocation_id"]
    created = ok(
        staff_client.op(
            "invocation/create",
            {
                "test_id": started["test_id"],
                "model_id": str(catalog.models[1].pk),
                "scenario_id": str(catalog.scenarios[0].pk),
                "agent_id": str(catalog.agents[0].pk),
            },
        )
    )
    assert created["position"] == 1 and created["model_title"] == "Echo"
    assert Invocation.objects.get(pk=created["id"]).status == InvocationStatus.SUCCEEDED
    axes = Test.objects.get(pk=started["test_id"]).axes
    assert axes["model_ids"] == [str(model.pk) for model in catalog.models]

    trace = ok(staff_client.op("invocation/trace", {"invocation_id": first}))
    kinds = [item["kind"] for item in trace["items"]]
    assert kinds == ["message", "tool_call", "message"]
    assert [item["role"] for item in trace["items"] if item["kind"] == "message"] == [
        "agent",
        "persona",
    ]
    assert trace["events"][0]["event_type"] == "GenerationProgressEvent"
    assert [event["seq"] for event in trace["events"]] == list(range(1, len(trace["events"]) + 1))
    assert {run["kind"] for run in trace["runs"]} == {"agent_turn", "persona_reply", "grade"}

    got = ok(staff_client.op("invocation/get", {"id": first}))
    assert len(got["transcript"]) == 2 and got["grade"]["total_points"] == 8
    assert got["tool_calls"][0]["name"] == "lookup_policy"

    old_run = got["run_id"]
    rerun = ok(staff_client.op("invocation/run", {"invocation_id": first}))
    assert rerun["status"] == InvocationStatus.QUEUED  # the answer is given before it runs
    again = ok(staff_client.op("invocation/get", {"id": first}))
    assert again["status"] == InvocationStatus.SUCCEEDED and again["run_id"] != old_run
    assert TestGrade.objects.filter(invocation_id=first).count() == 1

    nothing = ok(staff_client.op("invocation/terminate", {"invocation_id": first}))
    assert nothing["success"] is False and "succeeded" in nothing["message"]
    done = ok(staff_client.op("invocation/complete", {"invocation_id": first}))
    assert done["status"] == InvocationStatus.COMPLETED
    assert (
        ok(staff_client.op("invocation/complete", {"invocation_id": first}))["version"]
        == done["version"]
    )
    error(staff_client.op("invocation/run", {"invocation_id": first}), 422, "invocation_completed")


def test_terminating_a_queued_invocation(staff, staff_client, catalog):
    test = catalog.start_queued(
        staff, model_ids=[catalog.models[0].pk], scenario_ids=[catalog.scenarios[0].pk]
    )
    pk = str(test.invocations.get().pk)
    body = ok(staff_client.op("invocation/terminate", {"invocation_id": pk}))
    assert body == {
        "invocation_id": pk,
        "success": True,
        "message": "The invocation was terminated.",
        "status": "terminated",
    }
    error(staff_client.op("invocation/complete", {"invocation_id": str(uuid.uuid4())}), 404)
    assert (
        ok(staff_client.op("invocation/complete", {"invocation_id": pk}))["status"] == "completed"
    )


# -- export ---------------------------------------------------------------------------------------


def test_export_writes_a_zip_the_download_op_streams_and_audits_it(staff_client, catalog):
    import io
    import zipfile

    started = start(staff_client, catalog)
    for view, names in (
        ("test", {"invocations.csv", "benchmark.json", "manifest.json"}),
        ("invocations", {"invocations.csv", "manifest.json"}),
    ):
        body = ok(staff_client.op("test/export", {"test_id": started["test_id"], "view": view}))
        assert body["row_count"] == 4 and body["file_id"] == body["upload_id"]
        for op in ("test/file/download", "test/file_download"):
            response = staff_client.op(op, {"file_id": body["file_id"]})
            assert response.status_code == 200
            archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
            files = set(archive.namelist())
            assert names <= files
            rows = archive.read("invocations.csv").decode().strip().splitlines()
            assert len(rows) == 5 and rows[0].startswith("invocation_id,")
        if view == "invocations":
            transcripts = [name for name in files if name.startswith("invocations/")]
            assert len(transcripts) == 4
    assert TimelineEvent.objects.filter(event_type="test.export").count() == 2
    error(staff_client.op("test/export", {"test_id": started["test_id"], "view": "nope"}), 400)


# -- tenancy --------------------------------------------------------------------------------------


def test_every_op_answers_404_for_another_organizations_ids(staff_client, catalog, outsider_client):
    started = start(
        staff_client,
        catalog,
        model_ids=[str(catalog.models[0].pk)],
        secrets=[{"label": "Token", "value": "secret-value"}],
    )
    invocation = Invocation.objects.get(pk=started["invocation_id"])
    grade = TestGrade.objects.get(invocation=invocation)
    tool_call = ToolCall.objects.filter(invocation=invocation).first()
    test_id, invocation_id = started["test_id"], started["invocation_id"]
    calls = {
        "test/get": {"test_id": test_id},
        "test/stop": {"test_id": test_id},
        "test/complete": {"test_id": test_id},
        "test/grade": {"invocation_id": invocation_id, "full": True},
        "test/feedback": {
            "grade_id": str(grade.pk),
            "tool_call_id": str(tool_call.pk),
            "standard_group_id": str(catalog.groups[0].pk),
            "score": 1,
        },
        "test/decrypt": {"invocation_id": invocation_id, "key_id": started["key_ids"][0]},
        "test/export": {"test_id": test_id},
        "test/archive": {"test_ids": [test_id]},
        "test/title": {"test_id": test_id, "title": "Mine now"},
        "benchmark/get": {"benchmark_id": test_id},
        "invocation/get": {"invocation_id": invocation_id},
        "invocation/trace": {"invocation_id": invocation_id},
        "invocation/run": {"invocation_id": invocation_id},
        "invocation/terminate": {"invocation_id": invocation_id},
        "invocation/complete": {"invocation_id": invocation_id},
        "invocation/create": {
            "test_id": test_id,
            "model_id": str(catalog.models[0].pk),
            "scenario_id": str(catalog.scenarios[0].pk),
            "agent_id": str(catalog.agents[0].pk),
        },
        "test/start": catalog.start_body(),
    }
    for op, body in calls.items():
        error(outsider_client.op(op, body), 404)
    test = Test.objects.get(pk=test_id)
    assert (test.status, test.archived) == ("finished", False)
    assert not Feedback.objects.exists() and TestGrade.objects.get(pk=grade.pk).source == "ai"
    assert not TimelineEvent.objects.filter(event_type__in=["test.decrypt", "test.export"]).exists()


# -- search ---------------------------------------------------------------------------------------


def test_search_filters_by_eval_department_archive_and_dates_with_facets(
    staff_client, catalog, org_admin, make_client
):
    first = start(
        staff_client,
        catalog,
        model_ids=[str(catalog.models[1].pk)],
        scenario_ids=[str(catalog.scenarios[0].pk)],
    )
    other_eval = EvalFactory(
        organization=catalog.organization,
        department=catalog.department,
        rubric=catalog.rubric,
        title="Zeta eval",
    )
    second = start(
        staff_client,
        catalog,
        eval_id=str(other_eval.pk),
        model_ids=[str(catalog.models[1].pk)],
        scenario_ids=[str(catalog.scenarios[0].pk)],
    )
    body = ok(staff_client.op("test/search", {"eval_ids": [str(other_eval.pk)]}))
    assert [row["test_id"] for row in body["tests"]] == [second["test_id"]]
    options = {option["id"]: option["count"] for option in body["eval_filter"]["options"]}
    assert options == {str(catalog.eval.pk): 1, str(other_eval.pk): 1}
    narrowed = ok(staff_client.op("test/search", {"eval_search": "zeta"}))
    assert [o["id"] for o in narrowed["eval_filter"]["options"]] == [str(other_eval.pk)]
    assert narrowed["total_count"] == 2
    dept = ok(staff_client.op("test/search", {"department_ids": [str(catalog.department.pk)]}))
    assert dept["total_count"] == 2
    assert dept["department_filter"]["options"][0]["label"] == catalog.department.name
    assert dept["tests"][0]["counts"]["succeeded"] == 1

    ok(staff_client.op("test/archive", {"test_ids": [first["test_id"]]}))
    assert ok(staff_client.op("test/search"))["total_count"] == 1
    archived = ok(staff_client.op("test/search", {"is_archived": True}))
    assert [row["test_id"] for row in archived["tests"]] == [first["test_id"]]
    ok(staff_client.op("test/archive", {"test_ids": [first["test_id"]], "archived": False}))
    assert ok(staff_client.op("test/search"))["total_count"] == 2
    future = ok(staff_client.op("test/search", {"start_date": "2999-01-01T00:00:00Z"}))
    assert future["total_count"] == 0
    # An instructor of another department sees neither; the admin sees both.
    colleague = make_client(ProfileFactory(role="instructor", organization=org_admin.organization))
    assert ok(colleague.op("test/search"))["total_count"] == 0
    assert ok(make_client(org_admin).op("test/search"))["total_count"] == 2


def test_refresh_recopies_the_department_of_tests_whose_eval_moved(
    staff_client, catalog, org_admin, make_client
):
    started = start(
        staff_client,
        catalog,
        model_ids=[str(catalog.models[1].pk)],
        scenario_ids=[str(catalog.scenarios[0].pk)],
    )
    moved = DepartmentFactory(organization=catalog.organization)
    catalog.eval.department = moved
    catalog.eval.save()
    body = ok(make_client(org_admin).op("test/refresh"))
    assert body["refreshed_views"] == ["test.department"] and "test" in body["invalidated_tags"]
    assert Test.objects.get(pk=started["test_id"]).department_id == moved.pk


def test_a_grid_over_the_cell_limit_is_refused_before_anything_is_written(
    staff_client, catalog, settings
):
    settings.GLOW_TEST_MAX_CELLS = 3
    body = error(staff_client.op("test/start", catalog.start_body()), 400, "too_many_cells")
    assert "model_ids" in body["fields"]
    assert not Test.objects.exists() and not Group.objects.filter(family="test").exists()


def test_no_api_key_or_test_secret_reaches_the_logs(staff, catalog, caplog):
    """Every logger at DEBUG while a key is used (also wrongly) and a secret stored and read."""
    from conftest import GlowClient
    from glow.accounts.services import api_key_create

    caplog.set_level(logging.DEBUG)
    key = api_key_create(profile=staff).plaintext
    client = GlowClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    secret = "sk-live-0a1b2c3d4e5f-never-logged"
    body = start_with_secret(client, catalog, secret)
    assert ok(client.op("test/decrypt", body))["plaintext"] == secret
    error(client.op("test/get", {"test_id": str(uuid.uuid4())}), 404)
    error(client.op("test/start", {"eval_id": "not-a-uuid"}), 400)
    wrong = GlowClient()
    wrong.credentials(HTTP_X_API_KEY=key[:-4] + "xxxx")
    error(wrong.op("test/search", {}), 401, "invalid_api_key")

    assert caplog.records, "nothing was logged: the check would pass vacuously"
    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.__dict__!r}" for record in caplog.records
    )
    assert key not in logged and key[len("glow_") :] not in logged
    assert secret not in logged


def test_decrypt_answers_while_the_cache_is_unreachable(staff_client, catalog, settings):
    from tests.framework.test_security import UNREACHABLE_CACHE

    secret = "sk-live-redis-down"
    body = start_with_secret(staff_client, catalog, secret)
    settings.CACHES = UNREACHABLE_CACHE

    for _ in range(2):  # nothing could be cached: each answer is decrypted afresh
        answer = ok(staff_client.op("test/decrypt", body))
        assert answer["plaintext"] == secret and answer["cached"] is False
    assert TimelineEvent.objects.filter(event_type="test.decrypt").count() == 2
