"""Human review: criterion grades and turn comments beside the judge's grade, recomputed rollups,
the audit trail, calibration reports, the learner's gate and the review queue."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from attempts import (
    calibration,
    exports,
    grading,
    lifecycle,
    messaging,
    reviews,
    rollups,
    selectors,
)
from attempts.models import Attempt, Grade, Review
from conftest import client_for
from glow.catalog.grading import GradeSource
from system.models import TimelineEvent

pytestmark = pytest.mark.django_db


def criteria(world) -> list[dict]:
    """The rubric's four criteria (two groups of two, 2 points each), in order."""
    return [
        {**standard, "group_id": group["id"]}
        for group in world.rubric.structure()
        for standard in group["standards"]
    ]


def judged(world, start, scores: list[int], *, learner=None, complete=False):
    """An attempt whose first chat was ended and graded by the judge with these criterion
    scores (the AI path's own conversion), as the grader would have left it."""
    learner = learner or world.learner
    attempt = start(learner, world.home)
    chat = attempt.chats.order_by("position").first()
    messaging.attempt_message(
        actor=learner,
        attempt_id=attempt.pk,
        chat_id=chat.pk,
        message="I hear you; what happened with the midterm?",
        assistant_content="It felt unfair.",
    )
    lifecycle.attempt_end(actor=learner, attempt_id=attempt.pk, chat_id=chat.pk)
    chat.refresh_from_db()
    data = {
        "feedback": "Judge summary.",
        "standards": [
            {
                "standard_id": item["id"],
                "group_id": item["group_id"],
                "score": score,
                "feedback": f"Judge on {item['name']}.",
            }
            for item, score in zip(criteria(world), scores, strict=True)
        ],
    }
    values = grading._ai_values(
        data=data, structure=world.rubric.structure(), chat=chat, threshold=70
    )
    grading._grade_create(
        attempt=attempt, chat=chat, actor=None, values=values, source=GradeSource.AI
    )
    rollups._rollup_save(attempt)
    if complete:
        lifecycle.attempt_complete(actor=learner, attempt_id=attempt.pk)
    attempt.refresh_from_db()
    chat.refresh_from_db()
    return attempt, chat


def test_a_review_keeps_the_judges_grade_and_recomputes_score_feedback_and_completion(world, start):
    attempt, chat = judged(world, start, [2, 2, 1, 0], complete=True)
    assert attempt.score == 63  # 5 of 8 points
    judge_grade = chat.grade
    first, _, third, fourth = criteria(world)
    client = client_for(world.instructor)
    answer = client.op(
        "attempt/review",
        {
            "attempt_id": str(attempt.pk),
            "chat_id": str(chat.pk),
            "criteria": [
                {"standard_id": third["id"], "score": 2, "comment": "Named the policy well."},
                {"standard_id": fourth["id"], "score": 2},
            ],
        },
    )
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["attempt_score"] == 100 and body["attempt_passed"] is True
    assert body["ai_grade_id"] == str(judge_grade.pk)
    assert [row["ai_score"] for row in body["reviews"]] == [1, 0]

    judge_grade.refresh_from_db()
    assert judge_grade.score == 63 and judge_grade.source == GradeSource.AI  # kept as it was
    reviewed = Grade.objects.get(pk=body["grade_id"])
    assert reviewed.source == GradeSource.REVIEWED and reviewed.based_on_id == judge_grade.pk
    entry = next(e for e in reviewed.standard_scores if e["standard_id"] == third["id"])
    assert entry["score"] == 2 and entry["ai_score"] == 1 and entry["reviewed"] is True
    assert entry["feedback"] == "Named the policy well."
    assert reviewed.feedbacks[0]["content"].startswith("Scored 8/8 (100%)")
    assert {"content": "Named the policy well.", "standard_id": third["id"], "source": "staff"} in (
        reviewed.feedbacks
    )
    attempt.completion.refresh_from_db()
    assert attempt.completion.score == 100 and attempt.completion.passed is True
    assert attempt.completion.points == 8

    # The learner's attempt/get reads the reviewed grade.
    bundle = client_for(world.learner).op("attempt/get", {"attempt_id": str(attempt.pk)}).json()
    assert bundle["aggregated_results"]["score"] == 100
    assert bundle["chats"][0]["grade"]["source"] == "reviewed"
    assert bundle["chats"][0]["grade"]["based_on_id"] == str(judge_grade.pk)

    # The export's rubric scores carry staff's score with the judge's beside it.
    export = exports.attempt_export(
        actor=world.instructor,
        attempts=Attempt.objects.filter(pk=attempt.pk),
        view="attempt",
        single=True,
    )
    archive = zipfile.ZipFile(io.BytesIO(export.upload.file.read()))
    rows = list(csv.DictReader(io.StringIO(archive.read("rubric_scores.csv").decode())))
    row = next(r for r in rows if r["standard_id"] == third["id"])
    assert (row["score"], row["judge_score"], row["reviewed_by_staff"]) == ("2", "1", "yes")
    grades = list(csv.DictReader(io.StringIO(archive.read("grades.csv").decode())))
    assert grades[0]["score_percent"] == "100" and grades[0]["source"] == "reviewed"

    events = TimelineEvent.objects.filter(event_type="attempt.reviewed", entity_id=attempt.pk)
    assert sorted(event.extra_1 for event in events) == sorted(
        [
            f"{third['name']}: judge 1, staff 2/2",
            f"{fourth['name']}: judge 0, staff 2/2",
        ]
    )
    assert {event.actor_id for event in events} == {world.instructor.pk}

    # Reviewing again changes the score and says what it was; the first criterion is untouched.
    again = client.op(
        "attempt/review",
        {
            "attempt_id": str(attempt.pk),
            "chat_id": str(chat.pk),
            "standard_id": third["id"],
            "score": 0,
        },
    ).json()
    assert again["attempt_score"] == 75
    assert TimelineEvent.objects.filter(
        event_type="attempt.reviewed", extra_1=f"{third['name']}: judge 1, staff 2 → staff 0/2"
    ).exists()
    assert Review.objects.filter(chat=chat).count() == 2
    assert first["id"] not in {str(r.standard_id) for r in Review.objects.filter(chat=chat)}


def test_a_regrade_by_the_judge_keeps_the_human_grade_on_top(world, start):
    attempt, chat = judged(world, start, [0, 0, 0, 0])
    first = criteria(world)[0]
    reviews.attempt_review(
        actor=world.instructor,
        attempt_id=attempt.pk,
        chat_id=chat.pk,
        criteria=[{"standard_id": first["id"], "score": 2, "comment": ""}],
    )
    grading.attempt_grade(actor=world.instructor, attempt_id=attempt.pk, chat_id=chat.pk)
    chat.refresh_from_db()
    assert chat.grade.source == GradeSource.REVIEWED
    assert chat.grade.based_on.source == GradeSource.AI
    entry = next(e for e in chat.grade.standard_scores if e["standard_id"] == first["id"])
    assert entry["score"] == 2
    review = Review.objects.get(chat=chat)
    judge = next(e for e in chat.grade.based_on.standard_scores if e["standard_id"] == first["id"])
    assert review.ai_score == judge["score"]  # the pair calibration reads follows the regrade


def test_review_refuses_bad_input_learners_and_other_organizations(world, start, outsider):
    attempt, chat = judged(world, start, [1, 1, 1, 1])
    first = criteria(world)[0]
    body = {
        "attempt_id": str(attempt.pk),
        "chat_id": str(chat.pk),
        "standard_id": first["id"],
        "score": 2,
    }
    assert client_for(world.learner).op("attempt/review", body).status_code == 403
    assert client_for(outsider).op("attempt/review", body).status_code == 404
    # An instructor of another department of the same organization does not see it either.
    assert client_for(world.stranger).op("attempt/review", body).status_code == 403
    client = client_for(world.instructor)
    too_high = client.op("attempt/review", {**body, "score": 3})
    assert too_high.status_code == 400 and first["id"] in too_high.json()["fields"]["criteria"]
    foreign = client.op("attempt/review", {**body, "standard_id": str(attempt.pk)})
    assert foreign.status_code == 400
    assert client.op("attempt/review", {**body, "chat_id": str(attempt.pk)}).status_code == 404
    open_chat = attempt.chats.order_by("position").last()
    assert client.op("attempt/review", {**body, "chat_id": str(open_chat.pk)}).status_code in (
        409,
        422,
    )


def test_turn_comments_for_the_learner_show_beside_the_turn_and_staff_ones_do_not(
    world, start, outsider
):
    attempt, chat = judged(world, start, [1, 1, 1, 1])
    message = selectors.chat_transcript(chat)[0]
    client = client_for(world.instructor)
    shown = client.op(
        "attempt/annotate",
        {
            "attempt_id": str(attempt.pk),
            "message_id": str(message.pk),
            "body": "Good open question.",
            "visibility": "learner",
        },
    )
    assert shown.status_code == 200, shown.json()
    client.op(
        "attempt/annotate",
        {
            "attempt_id": str(attempt.pk),
            "message_id": str(message.pk),
            "body": "Calibrate with the TA team.",
            "visibility": "staff",
        },
    )
    learner_view = client_for(world.learner).op(
        "attempt/get", {"attempt_id": str(attempt.pk), "chat_id": str(chat.pk)}
    )
    turn = next(m for m in learner_view.json()["messages"] if m["id"] == str(message.pk))
    assert [c["body"] for c in turn["comments"]] == ["Good open question."]
    staff_view = client.op("attempt/get", {"attempt_id": str(attempt.pk), "chat_id": str(chat.pk)})
    turn = next(m for m in staff_view.json()["messages"] if m["id"] == str(message.pk))
    assert [c["body"] for c in turn["comments"]] == [
        "Good open question.",
        "Calibrate with the TA team.",
    ]
    for_learner = selectors.turn_comments_for_learner(attempt)
    assert [row["body"] for row in for_learner[message.pk]] == ["Good open question."]
    assert (
        TimelineEvent.objects.filter(event_type="attempt.annotated", entity_id=attempt.pk).count()
        == 2
    )
    body = {"attempt_id": str(attempt.pk), "message_id": str(message.pk), "body": "x"}
    assert client_for(outsider).op("attempt/annotate", body).status_code == 404
    assert client_for(world.learner).op("attempt/annotate", body).status_code == 403
    other = judged(world, start, [1, 1, 1, 1], learner=world.learner2)[1]
    wrong_attempt = {**body, "message_id": str(selectors.chat_transcript(other)[0].pk)}
    assert client.op("attempt/annotate", wrong_attempt).status_code == 404


def test_calibration_report_matches_hand_computed_agreement(world, start, outsider):
    first = criteria(world)[0]
    # (judge, human) on the first criterion: (0,0) (1,2) (2,2), quadratic kappa 0.8 by hand.
    for judge, human in [(0, 0), (1, 2), (2, 2)]:
        attempt, chat = judged(world, start, [judge, 1, 1, 1])
        reviews.attempt_review(
            actor=world.instructor,
            attempt_id=attempt.pk,
            chat_id=chat.pk,
            criteria=[{"standard_id": first["id"], "score": human}],
        )
    answer = client_for(world.instructor).op(
        "rubric/calibration", {"rubric_id": str(world.rubric.pk), "min_n": 3}
    )
    assert answer.status_code == 200, answer.json()
    report = answer.json()
    row = next(c for c in report["criteria"] if c["standard_id"] == first["id"])
    assert row["n"] == 3
    assert row["kappa"] == pytest.approx(0.8)
    assert row["exact_agreement"] == pytest.approx(0.667)
    assert row["adjacent_agreement"] == 1.0
    assert row["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert row["calibrated"] is True  # 0.8 >= 0.6 with n 3 >= min_n 3
    low, high = row["kappa_ci"]
    assert low <= 0.8 <= high
    others = [c for c in report["criteria"] if c["standard_id"] != first["id"]]
    assert all(c["n"] == 0 and c["calibrated"] is False for c in others)
    assert report["overall"]["n"] == 3 and report["overall"]["calibrated_count"] == 1
    body = {"rubric_id": str(world.rubric.pk)}
    assert client_for(outsider).op("rubric/calibration", body).status_code == 404
    assert client_for(world.learner).op("rubric/calibration", body).status_code == 403


def _gate(world, **fields):
    simulation = world.simulation
    for name, value in {"calibration_required": True, **fields}.items():
        setattr(simulation, name, value)
    simulation.save()


def test_a_gated_simulation_hides_an_uncalibrated_criterion_until_twenty_agreeing_reviews(
    world, start
):
    _gate(world)
    first = criteria(world)[0]
    attempt, chat = judged(world, start, [2, 1, 1, 1])
    learner = client_for(world.learner)

    def learner_sees():
        return learner.op("attempt/get", {"attempt_id": str(attempt.pk)}).json()

    bundle = learner_sees()
    assert bundle["aggregated_results"]["awaiting_review"] is True
    assert bundle["aggregated_results"]["score"] is None
    assert bundle["attempt"]["score"] is None and bundle["attempt"]["passed"] is None
    grade = bundle["chats"][0]["grade"]
    assert grade["awaiting_review"] is True and grade["score"] is None
    entry = next(e for e in grade["standard_scores"] if e["standard_id"] == first["id"])
    assert entry["score"] is None and entry["status"] == "awaiting_review"
    assert all("Judge on" not in item["content"] for item in grade["feedbacks"])
    # Staff still see the judge's numbers, and the chat waits in the review queue.
    staff_bundle = (
        client_for(world.instructor).op("attempt/get", {"attempt_id": str(attempt.pk)}).json()
    )
    assert staff_bundle["aggregated_results"]["score"] == 63
    assert staff_bundle["review"]["awaiting_review"] is True
    assert chat.pk in [row.chat.pk for row in calibration.review_queue(actor=world.instructor)]
    history = learner.op("attempt/search", {}).json()["attempts"]
    assert [row["score"] for row in history if row["id"] == str(attempt.pk)] == [None]

    # Twenty other chats reviewed in agreement with the judge on every criterion (varied scores,
    # so kappa is defined): 1.0 >= 0.6 and n 20 >= 20.
    for index in range(20):
        scores = [index % 3, (index + 1) % 3, (index + 2) % 3, index % 2]
        other_attempt, other_chat = judged(world, start, scores, learner=world.learner2)
        reviews.attempt_review(
            actor=world.instructor,
            attempt_id=other_attempt.pk,
            chat_id=other_chat.pk,
            criteria=[
                {"standard_id": item["id"], "score": score}
                for item, score in zip(criteria(world), scores, strict=True)
            ],
        )
        if index == 18:
            assert learner_sees()["aggregated_results"]["awaiting_review"] is True  # n = 19
    bundle = learner_sees()
    assert bundle["aggregated_results"]["awaiting_review"] is False
    assert bundle["aggregated_results"]["score"] == 63
    assert bundle["chats"][0]["grade"]["score"] == 63
    history = learner.op("attempt/search", {}).json()["attempts"]
    assert [row["score"] for row in history if row["id"] == str(attempt.pk)] == [63]
    assert chat.pk not in [row.chat.pk for row in calibration.review_queue(actor=world.instructor)]


def test_a_review_of_the_hidden_criteria_releases_that_chat(world, start):
    _gate(world, calibration_min_n=5)
    attempt, chat = judged(world, start, [2, 1, 1, 1])
    learner = client_for(world.learner)
    ended = learner.op("attempt/get", {"attempt_id": str(attempt.pk)}).json()
    assert ended["aggregated_results"]["score"] is None
    reviews.attempt_review(
        actor=world.instructor,
        attempt_id=attempt.pk,
        chat_id=chat.pk,
        criteria=[{"standard_id": item["id"], "score": 1} for item in criteria(world)],
    )
    bundle = learner.op("attempt/get", {"attempt_id": str(attempt.pk)}).json()
    assert bundle["aggregated_results"]["awaiting_review"] is False
    assert bundle["aggregated_results"]["score"] == 50
    statuses = {e.get("reviewed") for e in bundle["chats"][0]["grade"]["standard_scores"]}
    assert statuses == {True}


def test_learner_end_and_complete_answers_withhold_the_score_while_awaiting_review(world, start):
    _gate(world)
    attempt = start(world.learner, world.home)
    chat = attempt.chats.order_by("position").first()
    learner = client_for(world.learner)
    learner.op(
        "attempt/message",
        {
            "attempt_id": str(attempt.pk),
            "chat_id": str(chat.pk),
            "message": "How are you feeling about the midterm? Let's plan next steps.",
        },
    )
    ended = learner.op(
        "attempt/end", {"attempt_id": str(attempt.pk), "chat_id": str(chat.pk), "grade": True}
    ).json()
    assert ended["grade_id"] and ended["score"] is None and ended["awaiting_review"] is True
    completed = learner.op("attempt/complete", {"attempt_id": str(attempt.pk)}).json()
    assert completed["score"] is None and completed["awaiting_review"] is True


def test_review_queue_orders_by_judge_disagreement_and_counts_queries_once(world, start):
    world.rubric.judge_spread_threshold = 0.25
    world.rubric.save()
    spreads = [0.5, 1.0, 0.0, 0.75]
    made = []
    for spread in spreads:
        _, chat = judged(world, start, [1, 1, 1, 1])
        grade = chat.grade
        grade.judge_spread = spread
        grade.standard_scores = [{**e, "spread": spread} for e in grade.standard_scores]
        grade.save()
        made.append(chat)
    rows = calibration.review_queue(actor=world.instructor)
    assert [row.spread for row in rows] == [1.0, 0.75, 0.5]
    assert rows[0].reasons == ["judge samples disagree"]
    assert len(rows[0].waiting) == 4
    # Another organization's admin sees none of them; a reviewed chat leaves the queue.
    from glow.accounts.tests.factories import ProfileFactory

    assert calibration.review_queue(actor=ProfileFactory(role="admin")) == []
    reviews.attempt_review(
        actor=world.instructor,
        attempt_id=made[1].attempt_id,
        chat_id=made[1].pk,
        criteria=[{"standard_id": item["id"], "score": 1} for item in criteria(world)],
    )
    assert [row.spread for row in calibration.review_queue(actor=world.instructor)] == [0.75, 0.5]
    with CaptureQueriesContext(connection) as few:
        calibration.review_queue(actor=world.instructor)
    for _ in range(5):
        _, chat = judged(world, start, [1, 1, 1, 1])
        Grade.objects.filter(pk=chat.grade_id).update(judge_spread=0.9)
        chat.grade.standard_scores = [{**e, "spread": 0.9} for e in chat.grade.standard_scores]
        Grade.objects.filter(pk=chat.grade_id).update(standard_scores=chat.grade.standard_scores)
    with CaptureQueriesContext(connection) as many:
        assert len(calibration.review_queue(actor=world.instructor)) == 7
    assert len(many) == len(few)


def test_judge_samples_store_their_spread_and_a_wide_one_queues_the_chat(world, start, monkeypatch):
    world.rubric.judge_samples = 3
    world.rubric.save()
    from system import gateway

    real = gateway.model_call
    calls = []

    def varying(*, run, request, **kwargs):
        result = real(run=run, request=request, **kwargs)
        if request.task == "grade":
            calls.append(request.context.get("sample"))
            bump = len(calls) - 1  # samples score the first criterion 0, 1, 2
            data = dict(result.data)
            data["standards"] = [dict(entry) for entry in data["standards"]]
            data["standards"][0]["score"] = bump
            result.data = data
        return result

    monkeypatch.setattr(gateway, "model_call", varying)
    attempt = start(world.learner, world.home)
    chat = attempt.chats.order_by("position").first()
    messaging.attempt_message(
        actor=world.learner,
        attempt_id=attempt.pk,
        chat_id=chat.pk,
        message="Tell me more.",
        assistant_content="Fine.",
    )
    lifecycle.attempt_end(actor=world.learner, attempt_id=attempt.pk, chat_id=chat.pk, grade=True)
    chat.refresh_from_db()
    assert calls == [0, 1, 2]
    grade = chat.grade
    assert grade.judge_samples == 3 and grade.judge_spread == 1.0  # (2 - 0) / 2 points
    first = grade.standard_scores[0]
    assert first["samples"] == [0, 1, 2] and first["score"] == 1  # the median
    rows = calibration.review_queue(actor=world.instructor)
    assert [row.chat.pk for row in rows] == [chat.pk]


def test_k_judge_models_grade_once_each_and_the_rubric_names_them(world, start, make_client):
    from glow.catalog.tests.factories import AIModelFactory
    from system.models import Run

    judges = [AIModelFactory(organization=world.organization, title=f"Judge {n}") for n in (1, 2)]
    published = make_client(world.admin).op(
        "rubric/publish",
        {
            "rubric_id": str(world.rubric.pk),
            "version": world.rubric.version,
            "data": {"judge_model_ids": [str(judge.pk) for judge in judges]},
        },
    )
    assert published.status_code == 200, published.json()
    assert published.json()["judge_model_ids"] == [str(judge.pk) for judge in judges]
    attempt = start(world.learner, world.home)
    chat = attempt.chats.order_by("position").first()
    messaging.attempt_message(
        actor=world.learner,
        attempt_id=attempt.pk,
        chat_id=chat.pk,
        message="What worries you most? Let's plan the next step.",
        assistant_content="The deadline.",
    )
    lifecycle.attempt_end(actor=world.learner, attempt_id=attempt.pk, chat_id=chat.pk, grade=True)
    chat.refresh_from_db()
    assert chat.grade.judge_samples == 2
    runs = Run.objects.filter(group_id=attempt.group_id, kind="grade").order_by("created_at")
    assert [run.model_id for run in runs] == [judge.pk for judge in judges]
