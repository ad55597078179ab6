"""The attempt ops over HTTP: state machine refusals, roles and tenancy, agents, timer, stop, retries."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.utils import timezone

from attempts.models import (
    Attempt,
    AttemptCount,
    Chat,
    Completion,
    Grade,
    Message,
    QuestionResponse,
)
from glow.ai import LocalProvider, ProviderError, StructuredOutputError
from glow.catalog.tests.factories import PracticeFactory, SimulationFactory
from system import gateway
from system.models import Run, RunStatus

pytestmark = pytest.mark.django_db

LEARNER_TEXT = (
    "It sounds like this has been really stressful, and I understand. What part worries you "
    "most? Let me explain the policy clearly, and the next step is to meet on Friday."
)


def ok(response, status=200):
    assert response.status_code == status, response.content
    return response.json()


def refused(response, status, code=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) >= {"detail", "code", "fields"}
    if code:
        assert body["code"] == code, body
    return body


@pytest.fixture
def learner_client(world, make_client):
    return make_client(world.learner)


def begin(client, world, **extra):
    return ok(client.op("attempt/start", {"home_id": str(world.home.pk), **extra}))


def say(client, started, text=LEARNER_TEXT, chat=0, **extra):
    body = {
        "attempt_id": started["attempt_id"],
        "chat_id": started["chat_ids"][chat],
        "message": text,
    }
    return client.op("attempt/message", {**body, **extra})


def end(client, started, chat=0, **extra):
    body = {"attempt_id": started["attempt_id"], "chat_id": started["chat_ids"][chat]}
    return client.op("attempt/end", {**body, **extra})


# -- start --------------------------------------------------------------------------------------


def test_start_takes_exactly_one_entry(world, learner_client):
    both = learner_client.op(
        "attempt/start", {"home_id": str(world.home.pk), "practice_id": str(world.practice.pk)}
    )
    assert set(refused(both, 400)["fields"]) == {"home_id", "practice_id"}
    refused(learner_client.op("attempt/start", {}), 400)
    assert not Attempt.objects.exists()


def test_start_fans_out_one_chat_per_scenario_and_mints_the_group(world, learner_client):
    started = begin(learner_client, world)
    attempt = Attempt.objects.get(pk=started["attempt_id"])
    chats = list(attempt.chats.order_by("position"))
    assert [str(chat.pk) for chat in chats] == started["chat_ids"]
    assert [chat.scenario_id for chat in chats] == [
        s.pk for s in world.simulation.ordered_scenarios()
    ]
    assert [chat.status for chat in chats] == ["active", "pending"]
    assert attempt.group_id is not None and started["group_id"] == str(attempt.group_id)
    assert attempt.group.family == "attempt" and attempt.group.artifact_id == attempt.pk
    assert (attempt.department_id, attempt.cohort_id) == (world.department.pk, world.cohort.pk)
    assert attempt.practice is False


def test_start_from_practice_is_practice_mode_with_the_learners_cohort(world, learner_client):
    started = ok(learner_client.op("attempt/start", {"practice_id": str(world.practice.pk)}))
    attempt = Attempt.objects.get(pk=started["attempt_id"])
    assert attempt.practice and attempt.practice_entry_id == world.practice.pk
    assert started["chat_entry_id"] == str(world.practice.pk)
    assert attempt.cohort_id == world.cohort.pk


def test_idempotency_key_on_start_answers_the_first_attempt(world, learner_client, make_client):
    first = ok(
        learner_client.op(
            "attempt/start", {"home_id": str(world.home.pk)}, HTTP_IDEMPOTENCY_KEY="k-1"
        )
    )
    again = ok(
        learner_client.op(
            "attempt/start", {"home_id": str(world.home.pk)}, HTTP_IDEMPOTENCY_KEY="k-1"
        )
    )
    assert again == first
    other = ok(
        make_client(world.learner2).op(
            "attempt/start", {"home_id": str(world.home.pk)}, HTTP_IDEMPOTENCY_KEY="k-1"
        )
    )
    assert other["attempt_id"] != first["attempt_id"]
    assert Attempt.objects.filter(profile=world.learner).count() == 1


def test_a_learner_outside_the_cohort_cannot_start_the_home_entry(world, make_client):
    refused(make_client(world.stranger).op("attempt/start", {"home_id": str(world.home.pk)}), 404)


# -- the state machine ----------------------------------------------------------------------------


def test_illegal_transitions_are_refused(world, learner_client):
    started = begin(learner_client, world)
    refused(say(learner_client, started, chat=1), 422, "chat_not_active")
    refused(end(learner_client, started, chat=1), 422, "chat_not_started")
    refused(
        learner_client.op("attempt/next", {"attempt_id": started["attempt_id"]}),
        422,
        "chat_not_ended",
    )
    ok(say(learner_client, started))
    ok(end(learner_client, started))
    refused(say(learner_client, started), 422, "chat_not_active")
    ok(learner_client.op("attempt/next", {"attempt_id": started["attempt_id"]}))
    ok(end(learner_client, started, chat=1))
    refused(
        learner_client.op("attempt/next", {"attempt_id": started["attempt_id"]}),
        422,
        "no_next_scenario",
    )
    ok(learner_client.op("attempt/complete", {"attempt_id": started["attempt_id"]}))
    refused(say(learner_client, started, chat=1), 409, "attempt_completed")
    refused(end(learner_client, started, chat=1), 409, "attempt_completed")
    refused(
        learner_client.op("attempt/next", {"attempt_id": started["attempt_id"]}),
        409,
        "attempt_completed",
    )


def test_end_is_idempotent_and_grades_once(world, learner_client):
    started = begin(learner_client, world)
    ok(say(learner_client, started))
    first = ok(end(learner_client, started, grade=True))
    again = ok(end(learner_client, started, grade=True))
    assert again["grade_id"] == first["grade_id"]
    assert Grade.objects.count() == 1
    assert Run.objects.filter(kind="grade").count() == 1


def test_infinite_mode_starts_the_scenarios_over(world, learner_client):
    started = begin(learner_client, world, infinite_mode=True)
    ok(end(learner_client, started))
    ok(learner_client.op("attempt/next", {"attempt_id": started["attempt_id"]}))
    ok(end(learner_client, started, chat=1))
    third = ok(learner_client.op("attempt/next", {"attempt_id": started["attempt_id"]}))
    chat = Chat.objects.get(pk=third["chat_id"])
    assert chat.position == 2 and chat.scenario_id == world.simulation.ordered_scenarios()[0].pk
    assert Attempt.objects.get(pk=started["attempt_id"]).chat_count == 3


def test_complete_twice_answers_the_same_completion(world, learner_client):
    started = begin(learner_client, world)
    ok(say(learner_client, started))
    ok(end(learner_client, started, grade=True))
    first = ok(learner_client.op("attempt/complete", {"attempt_id": started["attempt_id"]}))
    again = ok(learner_client.op("attempt/complete", {"attempt_id": started["attempt_id"]}))
    assert again["completion_id"] == first["completion_id"]
    assert Completion.objects.count() == 1
    assert set(Chat.objects.values_list("status", flat=True)) == {"ended"}


def test_complete_rolls_the_rubric_up_per_group_across_chats(world, learner_client):
    started = begin(learner_client, world)
    for chat in (0, 1):
        ok(say(learner_client, started, chat=chat))
        ok(end(learner_client, started, chat=chat, grade=True))
        if chat == 0:
            ok(learner_client.op("attempt/next", {"attempt_id": started["attempt_id"]}))
    done = ok(learner_client.op("attempt/complete", {"attempt_id": started["attempt_id"]}))
    grades = list(Grade.objects.all())
    assert len(grades) == 2
    for group in done["groups"]:
        entries = [
            entry
            for grade in grades
            for entry in grade.standard_scores
            if entry["group_id"] == group["group_id"]
        ]
        assert group["score"] == sum(entry["score"] for entry in entries)
        assert group["total_points"] == sum(entry["points"] for entry in entries) == 8
    weighted = sum(grade.score * grade.total_points for grade in grades)
    assert done["score"] == math.floor(weighted / sum(g.total_points for g in grades) + 0.5)
    attempt = Attempt.objects.get(pk=started["attempt_id"])
    assert (attempt.status, attempt.score) == ("completed", done["score"])
    assert attempt.passed == (done["score"] >= world.simulation.pass_threshold)


def test_end_all_ends_every_open_chat(world, learner_client):
    started = begin(learner_client, world)
    ok(say(learner_client, started))
    body = ok(learner_client.op("attempt/end-all", {"attempt_id": started["attempt_id"]}))
    assert body["success"] is True
    assert body["all_scenarios_complete"] is False  # the second chat was never opened
    assert set(Chat.objects.values_list("status", flat=True)) == {"ended"}
    assert Attempt.objects.get(pk=started["attempt_id"]).ended_chat_count == 2


# -- agents -------------------------------------------------------------------------------------


def test_agent_message_with_assistant_content_skips_the_ai(world, learner_client):
    started = begin(learner_client, world)
    body = ok(
        say(
            learner_client,
            started,
            assistant_content="I just don't get base cases.",
            hints=["Ask what they tried.", {"type": "praise", "content": "Warm opening."}],
            contents=[{"type": "text", "content": "I just don't get base cases."}],
        )
    )
    assert body["assistant_content"] == "I just don't get base cases."
    assert body["hints"] == [
        {"type": "suggestion", "content": "Ask what they tried."},
        {"type": "praise", "content": "Warm opening."},
    ]
    assert not Run.objects.filter(kind__in=["persona_reply", "hint"]).exists()
    reply = Message.objects.get(pk=body["assistant_message_id"])
    assert reply.contents[0]["content"] == "I just don't get base cases."
    assert reply.run_id is None


def test_agent_end_with_a_score_skips_the_ai_grader(world, learner_client):
    started = begin(learner_client, world)
    body = ok(
        end(
            learner_client,
            started,
            score=80,
            strengths=["Named the feeling."],
            highlights=[{"quote": "It sounds like", "comment": "Good."}],
        )
    )
    assert (body["score"], body["passed"]) == (80, True)
    grade = Grade.objects.get(pk=body["grade_id"])
    assert grade.source == "agent"
    assert (grade.points, grade.total_points) == (round(0.8 * 8), 8)
    assert grade.strengths == [{"content": "Named the feeling."}]
    assert not Run.objects.filter(kind="grade").exists()


def test_grade_entries_without_a_score_or_ai_are_refused(world, learner_client):
    started = begin(learner_client, world)
    assert "score" in refused(end(learner_client, started, strengths=["x"]), 400)["fields"]


# -- replies: streaming, stop, retry, failures ----------------------------------------------------


def test_reply_deltas_go_to_the_group_channel_and_the_final_event_is_stored(
    world, learner_client, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        "system.events.publish",
        lambda *, channel, event_type, data, event_id: sent.append((channel, event_type)),
    )
    started = begin(learner_client, world)
    with django_capture_on_commit_callbacks(execute=True):
        body = ok(say(learner_client, started))
    channel = f"group-{started['group_id']}"
    deltas = [kind for where, kind in sent if where == channel and kind == "ChatDeltaEvent"]
    assert len(deltas) >= 2
    assert (channel, "ChatMessageEvent") in sent
    run = Run.objects.get(pk=body["run_id"])
    assert run.status == RunStatus.SUCCEEDED and run.total_tokens > 0
    assert run.events.filter(event_type="ChatMessageEvent").count() == 1


def test_stop_cancels_the_reply_and_keeps_the_partial_text(world, learner_client, monkeypatch):
    monkeypatch.setattr(gateway, "CANCEL_POLL_SECONDS", 0)
    started = begin(learner_client, world)
    stops = []

    def publish(**kwargs):
        if kwargs["event_type"] == "ChatDeltaEvent" and not stops:
            stops.append(ok(learner_client.op("attempt/stop", {"chat_id": started["chat_ids"][0]})))

    monkeypatch.setattr("system.events.group_publish", publish)
    body = ok(say(learner_client, started))
    assert stops[0]["success"] is True
    assert body["stopped"] is True
    reply = Message.objects.get(pk=body["assistant_message_id"])
    assert reply.stopped and reply.content and len(reply.content) < 200
    assert Run.objects.get(pk=body["run_id"]).status == RunStatus.CANCELLED
    chat = Chat.objects.get(pk=started["chat_ids"][0])
    assert chat.status == "active" and chat.last_message_id == reply.pk


def test_stop_by_group_id_with_nothing_running(world, learner_client):
    started = begin(learner_client, world)
    body = ok(learner_client.op("attempt/stop", {"group_id": started["group_id"]}))
    assert body == {
        "chat_id": started["chat_ids"][0],
        "success": False,
        "message": "Nothing was being generated.",
    }
    refused(learner_client.op("attempt/stop", {}), 400)


def test_a_retry_branches_and_get_shows_the_current_branch(world, learner_client):
    started = begin(learner_client, world)
    first = ok(say(learner_client, started, text="Hello, what brings you here?"))
    later = ok(
        say(
            learner_client,
            started,
            text="Let me explain: the next step is to read the policy.",
            parent_message_id=first["assistant_message_id"],
        )
    )
    assert (
        Message.objects.get(pk=later["user_message_id"]).parent_id
        == Message.objects.get(pk=first["assistant_message_id"]).pk
    )
    retry = ok(
        say(
            learner_client,
            started,
            text="Take two: what worries you most?",
            parent_message_id=first["user_message_id"],
        )
    )
    assert Message.objects.get(pk=retry["user_message_id"]).parent_id is None
    bundle = ok(learner_client.op("attempt/get", {"attempt_id": started["attempt_id"]}))
    assert [message["id"] for message in bundle["messages"]] == [
        retry["user_message_id"],
        retry["assistant_message_id"],
    ]
    assert Message.objects.filter(chat_id=started["chat_ids"][0]).count() == 6
    bad = say(learner_client, started, parent_message_id=str(world.home.pk))
    assert "parent_message_id" in refused(bad, 400)["fields"]


def test_a_failing_model_keeps_the_learners_message(world, learner_client, monkeypatch):
    def broken(*args, **kwargs):
        raise ProviderError("upstream timed out")

    started = begin(learner_client, world)
    monkeypatch.setattr("glow.ai.local.provider.LocalProvider._stream", broken)
    body = refused(say(learner_client, started), 502, "model_error")
    assert Message.objects.filter(pk=body["user_message_id"], role="user").exists()
    assert Run.objects.get(pk=body["run_id"]).status == RunStatus.FAILED
    chat = Chat.objects.get(pk=started["chat_ids"][0])
    assert chat.message_count == 1 and chat.status == "active"


def test_hints_that_could_not_be_produced_are_an_explicit_error(world, learner_client, monkeypatch):
    answer = LocalProvider._complete

    def no_json(self, request):
        if request.task == "hint":
            raise StructuredOutputError(
                "The model's answer did not match the requested JSON schema"
            )
        return answer(self, request)

    started = begin(learner_client, world)
    monkeypatch.setattr("glow.ai.local.provider.LocalProvider._complete", no_json)
    body = ok(say(learner_client, started))
    hint_run = Run.objects.get(kind="hint")
    assert body["hints"] == [
        {
            "type": "error",
            "content": "No hints for this turn: The model's answer did not match the requested "
            "JSON schema",
            "run_id": str(hint_run.pk),
        }
    ]
    assert hint_run.status == RunStatus.FAILED and "JSON schema" in hint_run.error
    assert Message.objects.get(pk=body["assistant_message_id"]).content, "the reply is kept"
    bundle = ok(learner_client.op("attempt/get", {"attempt_id": started["attempt_id"]}))
    assert bundle["messages"][-1]["hints"] == body["hints"]


# -- timer --------------------------------------------------------------------------------------


def test_once_the_timer_runs_out_only_end_and_complete_are_allowed(world, learner_client):
    started = begin(learner_client, world)
    ok(say(learner_client, started))
    Attempt.objects.filter(pk=started["attempt_id"]).update(
        started_at=timezone.now() - timedelta(minutes=31)
    )
    bundle = ok(learner_client.op("attempt/get", {"attempt_id": started["attempt_id"]}))
    assert bundle["timer"]["expired"] is True and bundle["timer"]["remaining_seconds"] == 0
    assert bundle["available_continuation_options"]["can_message"] is False
    refused(say(learner_client, started), 422, "time_expired")
    ok(end(learner_client, started, grade=True))
    ok(learner_client.op("attempt/complete", {"attempt_id": started["attempt_id"]}))


# -- get ----------------------------------------------------------------------------------------


def test_get_answers_the_bundle_for_the_chosen_chat(world, learner_client):
    started = begin(learner_client, world)
    ok(say(learner_client, started))
    ok(end(learner_client, started, grade=True))
    ok(learner_client.op("attempt/next", {"attempt_id": started["attempt_id"]}))
    bundle = ok(learner_client.op("attempt/get", {"attempt_id": started["attempt_id"]}))
    assert bundle["current_chat_id"] == started["chat_ids"][1]
    assert bundle["current_chat_index"] == 1 and bundle["expected_chat_count"] == 2
    assert bundle["messages"] == [] and bundle["has_messages"] is True
    assert bundle["is_own_attempt"] and bundle["is_active"] and not bundle["show_results"]
    assert bundle["timer"]["time_limit_minutes"] == 30
    assert len(bundle["rubric_structure"]["groups"]) == 2
    first = ok(
        learner_client.op(
            "attempt/get",
            {"attempt_id": started["attempt_id"], "chat_id": started["chat_ids"][0]},
        )
    )
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["chat"]["grade"]["score"] == first["aggregated_results"]["score"]
    assert {"id", "role", "content", "hints", "created_at", "stopped"} <= set(first["messages"][0])
    unknown = learner_client.op(
        "attempt/get", {"attempt_id": started["attempt_id"], "chat_id": str(world.home.pk)}
    )
    refused(unknown, 404)


# -- roles and tenancy --------------------------------------------------------------------------


def test_a_learner_cannot_read_another_learners_attempt(world, learner_client, make_client):
    started = begin(learner_client, world)
    other = make_client(world.learner2)
    body = ok(other.op("attempt/get", {"attempt_id": started["attempt_id"]}))
    assert body == {
        "actor_name": world.learner2.name,
        "attempt_exists": True,
        "access_denied": True,
        "has_messages": False,
    }
    refused(say(other, started), 404)
    refused(other.op("attempt/stop", {"chat_id": started["chat_ids"][0]}), 404)
    assert ok(other.op("attempt/search", {}))["total_count"] == 0
    missing = ok(learner_client.op("attempt/search", {}))
    assert missing["total_count"] == 1
    refused(other.op("attempt/get", {"attempt_id": str(world.home.pk)}), 404)


def test_an_instructor_reads_their_departments_attempts_but_does_not_run_them(
    world, learner_client, make_client, start
):
    started = begin(learner_client, world)
    elsewhere = PracticeFactory(
        organization=world.organization, department=world.elsewhere, simulation=world.simulation
    )
    start(world.stranger, elsewhere)  # outside the instructor's department and cohorts
    teacher = make_client(world.instructor)
    bundle = ok(teacher.op("attempt/get", {"attempt_id": started["attempt_id"]}))
    assert bundle["attempt_exists"] and not bundle["access_denied"]
    assert bundle["is_own_attempt"] is False and bundle["should_show_controls"] is False
    history = ok(teacher.op("attempt/search", {}))
    assert [row["attempt_id"] for row in history["attempts"]] == [started["attempt_id"]]
    refused(say(teacher, started), 403, "not_attempt_owner")
    ok(say(learner_client, started))
    ok(end(learner_client, started))
    regraded = ok(
        teacher.op(
            "attempt/grade",
            {"attempt_id": started["attempt_id"], "chat_id": started["chat_ids"][0]},
        )
    )
    assert Grade.objects.get(pk=regraded["grade_id"]).created_by == world.instructor
    assert ok(make_client(world.admin).op("attempt/search", {}))["total_count"] == 2


OPS = [
    ("attempt/get", lambda s: {"attempt_id": s["attempt_id"]}),
    ("attempt/message", lambda s: {**ids(s), "message": "hi"}),
    ("attempt/stop", lambda s: {"chat_id": s["chat_ids"][0]}),
    ("attempt/stop", lambda s: {"group_id": s["group_id"]}),
    ("attempt/next", lambda s: {"attempt_id": s["attempt_id"]}),
    ("attempt/end", lambda s: ids(s)),
    ("attempt/end-all", lambda s: {"attempt_id": s["attempt_id"]}),
    ("attempt/grade", lambda s: {"attempt_id": s["attempt_id"]}),
    ("attempt/complete", lambda s: {"attempt_id": s["attempt_id"]}),
    (
        "attempt/use-previous",
        lambda s: {
            "attempt_id": s["attempt_id"],
            "previous_chat_map": {s["chat_ids"][0]: s["chat_ids"][0]},
        },
    ),
    (
        "attempt/response",
        lambda s: {"chat_id": s["chat_ids"][0], "question_id": "q", "option_ids": []},
    ),
    ("attempt/group", lambda s: {"attempt_id": s["attempt_id"]}),
    ("attempt/group", lambda s: {"group_id": s["group_id"]}),
    ("attempt/export", lambda s: {"attempt_id": s["attempt_id"]}),
    ("attempt/title", lambda s: {"attempt_id": s["attempt_id"], "title": "Mine now"}),
    ("attempt/context", lambda s: {"attempt_id": s["attempt_id"]}),
    ("attempt/problem", lambda s: {"attempt_id": s["attempt_id"]}),
    ("attempt/docs", lambda s: {"entity_id": s["attempt_id"]}),
    ("attempt/draft", lambda s: {"attempt_id": s["attempt_id"], "version": 1, "data": {}}),
]


def ids(started):
    return {"attempt_id": started["attempt_id"], "chat_id": started["chat_ids"][0]}


@pytest.mark.parametrize(("path", "body"), OPS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(OPS)])
def test_another_organizations_ids_answer_404_on_every_op(
    world, learner_client, outsider_client, path, body
):
    started = begin(learner_client, world)
    refused(outsider_client.op(path, body(started)), 404)
    attempt = Attempt.objects.get(pk=started["attempt_id"])
    assert (attempt.title, attempt.status, attempt.message_count) == (
        f"{world.simulation.title} — {world.learner.name}",
        "in_progress",
        0,
    )


def test_archive_by_another_organization_changes_nothing(world, learner_client, outsider_client):
    started = begin(learner_client, world)
    refused(outsider_client.op("attempt/archive", {"attempt_ids": [started["attempt_id"]]}), 404)
    body = ok(outsider_client.op("attempt/archive", {"all": True}))
    assert body["updated_count"] == 0
    assert not Attempt.objects.get(pk=started["attempt_id"]).archived


# -- grade, use-previous, response, group ---------------------------------------------------------


def test_regrade_adds_a_grade_and_keeps_unrequested_entries(world, learner_client):
    started = begin(learner_client, world)
    ok(say(learner_client, started))
    first = ok(end(learner_client, started, grade=True))
    refused(
        learner_client.op(
            "attempt/grade",
            {"attempt_id": started["attempt_id"], "chat_id": started["chat_ids"][1]},
        ),
        422,
        "chat_not_ended",
    )
    Grade.objects.filter(pk=first["grade_id"]).update(strengths=[{"content": "kept"}])
    again = ok(
        learner_client.op(
            "attempt/grade",
            {
                "attempt_id": started["attempt_id"],
                "chat_id": started["chat_ids"][0],
                "resource_types": ["feedbacks"],
                "user_instructions": ["Be strict about policy."],
            },
        )
    )
    assert again["grade_id"] != first["grade_id"]
    grade = Grade.objects.get(pk=again["grade_id"])
    assert grade.strengths == [{"content": "kept"}]
    assert grade.instructions == ["Be strict about policy."]
    assert Chat.objects.get(pk=started["chat_ids"][0]).grade_id == grade.pk


def test_regrade_after_complete_leaves_the_completion_frozen(world, learner_client):
    started = begin(learner_client, world)
    ok(end(learner_client, started, score=40))
    done = ok(learner_client.op("attempt/complete", {"attempt_id": started["attempt_id"]}))
    ok(
        learner_client.op(
            "attempt/grade",
            {"attempt_id": started["attempt_id"], "chat_id": started["chat_ids"][0], "score": 90},
        )
    )
    attempt = Attempt.objects.get(pk=started["attempt_id"])
    assert attempt.score == done["score"] == 40
    assert Completion.objects.get(pk=done["completion_id"]).score == 40


def test_use_previous_copies_grades_only_from_the_learners_earlier_attempt(
    world, learner_client, make_client
):
    earlier = begin(learner_client, world)
    ok(end(learner_client, earlier, score=75))
    ok(learner_client.op("attempt/complete", {"attempt_id": earlier["attempt_id"]}))
    theirs = begin(make_client(world.learner2), world)
    ok(end(make_client(world.learner2), theirs, score=99))
    now = begin(learner_client, world)

    stolen = learner_client.op(
        "attempt/use-previous",
        {
            "attempt_id": now["attempt_id"],
            "previous_chat_map": {now["chat_ids"][0]: theirs["chat_ids"][0]},
        },
    )
    assert now["chat_ids"][0] in refused(stolen, 400)["fields"]["previous_chat_map"]
    wrong_scenario = learner_client.op(
        "attempt/use-previous",
        {
            "attempt_id": now["attempt_id"],
            "previous_chat_map": {now["chat_ids"][1]: earlier["chat_ids"][0]},
        },
    )
    refused(wrong_scenario, 400)

    ok(
        learner_client.op(
            "attempt/use-previous",
            {
                "attempt_id": now["attempt_id"],
                "previous_chat_map": {now["chat_ids"][0]: earlier["chat_ids"][0]},
            },
        )
    )
    chat = Chat.objects.select_related("grade").get(pk=now["chat_ids"][0])
    assert chat.status == "ended"
    assert (chat.grade.source, chat.grade.score) == ("copied", 75)
    assert Attempt.objects.get(pk=now["attempt_id"]).score == 75


def test_response_checks_a_video_question(world, learner_client):
    scenario = world.simulation.ordered_scenarios()[0]
    scenario.modality = "video"
    scenario.questions = [
        {
            "id": "q1",
            "text": "What should the TA do first?",
            "options": [{"id": "a", "text": "Listen"}, {"id": "b", "text": "Lecture"}],
            "correct_option_ids": ["a"],
        }
    ]
    scenario.save()
    started = begin(learner_client, world)
    answer = {"chat_id": started["chat_ids"][0], "question_id": "q1"}
    wrong = ok(learner_client.op("attempt/response", {**answer, "option_ids": ["b"]}))
    right = ok(learner_client.op("attempt/response", {**answer, "option_ids": ["a"]}))
    assert (wrong["is_correct"], right["is_correct"]) == (False, True)
    assert right["response_id"] == wrong["response_id"]
    assert QuestionResponse.objects.get().is_correct is True
    refused(
        learner_client.op(
            "attempt/response", {**answer, "question_id": "nope", "option_ids": ["a"]}
        ),
        400,
    )
    refused(learner_client.op("attempt/response", {**answer, "option_ids": ["z"]}), 400)


def test_group_resolves_the_attempts_stream_group(world, learner_client):
    started = begin(learner_client, world)
    body = ok(learner_client.op("attempt/group", {"attempt_id": started["attempt_id"]}))
    assert body["group_id"] == started["group_id"]
    assert (
        ok(learner_client.op("attempt/group", {"group_id": started["group_id"]}))["attempt_id"]
        == started["attempt_id"]
    )
    refused(learner_client.op("attempt/group", {}), 400)


def test_group_is_minted_for_an_attempt_that_has_none(world, make_client):
    from attempts.tests.factories import AttemptFactory

    attempt = AttemptFactory(
        organization=world.organization, profile=world.learner, simulation=world.simulation
    )
    body = ok(make_client(world.learner).op("attempt/group", {"attempt_id": str(attempt.pk)}))
    attempt.refresh_from_db()
    assert body["group_id"] == str(attempt.group_id)


# -- archive, refresh, docs, drafts ----------------------------------------------------------------


def test_archive_all_with_filters_spares_excluded_ids(world, make_client, start):
    mine = [start(world.learner, world.home) for _ in range(2)]
    theirs = start(world.learner2, world.home)
    practice = start(world.learner2, world.practice)
    admin = make_client(world.admin)
    body = ok(
        admin.op(
            "attempt/archive",
            {
                "all": True,
                "filter_cohort_ids": [str(world.cohort.pk)],
                "practice": False,
                "excluded_ids": [str(mine[0].pk)],
                "archived": True,
            },
        )
    )
    assert body["updated_count"] == 2
    assert set(body["profile_ids_to_invalidate"]) == {str(world.learner.pk), str(world.learner2.pk)}
    assert set(Attempt.objects.filter(archived=True).values_list("pk", flat=True)) == {
        mine[1].pk,
        theirs.pk,
    }
    assert not Attempt.objects.get(pk=practice.pk).archived
    undo = ok(admin.op("attempt/archive", {"attempt_ids": [str(theirs.pk)], "archived": False}))
    assert undo["updated_count"] == 1


def test_refresh_repairs_drifted_rollups_and_counts(world, learner_client):
    started = begin(learner_client, world)
    ok(say(learner_client, started))
    ok(end(learner_client, started, score=60))
    Attempt.objects.filter(pk=started["attempt_id"]).update(message_count=99, score=1, chat_count=7)
    AttemptCount.objects.all().delete()
    assert ok(learner_client.op("attempt/search", {}))["total_count"] == 0  # the drift shows
    body = ok(learner_client.op("attempt/refresh", {}))
    assert body["success"] and body["refreshed_views"] == [
        "attempt_counters",
        "attempt_scores",
        "attempt_counts",
    ]
    attempt = Attempt.objects.get(pk=started["attempt_id"])
    assert (attempt.message_count, attempt.score, attempt.chat_count) == (2, 60, 2)
    assert ok(learner_client.op("attempt/search", {}))["total_count"] == 1


def test_docs_and_context_describe_the_attempt(world, learner_client):
    started = begin(learner_client, world)
    docs = ok(learner_client.op("attempt/docs", {}))
    names = {operation["name"] for operation in docs["api_operations"]}
    assert {
        "start",
        "message",
        "stop",
        "next",
        "end",
        "end-all",
        "grade",
        "complete",
        "use-previous",
        "response",
        "group",
        "export",
        "file/download",
        "file_download",
    } <= names
    context = ok(learner_client.op("attempt/context", {"attempt_id": started["attempt_id"]}))
    assert world.simulation.title in context["context"]


def test_publish_cannot_create_an_attempt(world, learner_client):
    refused(learner_client.op("attempt/publish", {"data": {"title": "Forged"}}), 400)
    assert not Attempt.objects.exists()


# -- export -------------------------------------------------------------------------------------


def test_export_files_are_readable_only_by_who_may_read_them(
    world, learner_client, make_client, outsider_client
):
    started = begin(learner_client, world)
    ok(say(learner_client, started))
    single = ok(learner_client.op("attempt/export", {"attempt_id": started["attempt_id"]}))
    record = ok(learner_client.op("attempt/export", {"view": "record"}))
    assert record["row_count"] == 1 and record["message_count"] == 2

    teacher, peer = make_client(world.instructor), make_client(world.learner2)
    assert (
        teacher.op("attempt/file_download", {"upload_id": single["upload_id"]}).status_code == 200
    )
    refused(teacher.op("attempt/file/download", {"file_id": record["file_id"]}), 404)
    refused(peer.op("attempt/file/download", {"file_id": single["file_id"]}), 404)
    refused(outsider_client.op("attempt/file/download", {"file_id": single["file_id"]}), 404)
    admin = make_client(world.admin)
    assert admin.op("attempt/file/download", {"file_id": record["file_id"]}).status_code == 200


def test_export_views_choose_their_attempts(world, make_client, start):
    start(world.learner, world.home)
    start(world.learner2, world.home)
    start(world.learner2, world.practice)
    teacher = make_client(world.instructor)
    dashboard = ok(teacher.op("attempt/export", {"view": "dashboard", "practice": False}))
    assert dashboard["row_count"] == 2
    record = ok(
        teacher.op(
            "attempt/export", {"view": "record", "target_profile_id": str(world.learner2.pk)}
        )
    )
    assert record["row_count"] == 2
    refused(teacher.op("attempt/export", {"view": "attempt"}), 400)
    refused(teacher.op("attempt/export", {"view": "everything"}), 400)


def test_start_refuses_a_simulation_without_scenarios(world, make_client):
    from glow.catalog.tests.factories import HomeFactory

    empty = SimulationFactory(
        organization=world.organization, department=world.department, scenarios=[]
    )
    home = HomeFactory(
        organization=world.organization,
        department=world.department,
        simulation=empty,
        cohort=world.cohort,
    )
    refused(
        make_client(world.learner).op("attempt/start", {"home_id": str(home.pk)}),
        422,
        "simulation_not_ready",
    )
    assert not Attempt.objects.exists()


JUNK = [None, 7, "not-a-uuid", ["x"], {"a": 1}, "9" * 30_000]


def test_no_op_answers_500_to_ill_typed_fields(world, learner_client):
    """Every field of the attempt family's own ops, given junk: 4xx, never a 500."""
    from attempts.api import AttemptViewSet
    from glow.core.ops import resolve
    from glow.core.registry import registry

    family = registry.get("attempt")
    own = [getattr(value, "glow_op", None) for value in vars(AttemptViewSet).values()]
    for spec in filter(None, own):
        names = list(resolve(spec.request, family)().fields)
        for junk in JUNK:
            # Every field at once: the shape parses each of them, one request per kind of junk.
            response = learner_client.op(f"attempt/{spec.name}", dict.fromkeys(names, junk))
            assert response.status_code < 500, (spec.name, junk, response.content[:300])
