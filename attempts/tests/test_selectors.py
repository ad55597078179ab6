"""Search, facets and export: results, filters and a query count that does not grow with rows."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from attempts import exports, lifecycle, messaging, selectors
from attempts.models import Attempt
from attempts.serializers import AttemptOut
from glow.core.models import Upload

pytestmark = pytest.mark.django_db


def attempts_for(world, start, count: int) -> list[Attempt]:
    learners = [world.learner, world.learner2]
    return [start(learners[index % 2], world.home) for index in range(count)]


def queries_of(func) -> int:
    func()  # warm: the first request of a client also opens its session in the books
    with CaptureQueriesContext(connection) as captured:
        func()
    return len(captured)


@pytest.mark.parametrize("role", ["admin", "instructor", "learner"])
def test_search_query_count_is_the_same_at_1_and_10_rows(world, start, make_client, role):
    client = make_client(getattr(world, role))
    attempts_for(world, start, 1)
    one = queries_of(lambda: client.op("attempt/search", {"page_size": 25}))
    attempts_for(world, start, 11)
    ten = queries_of(lambda: client.op("attempt/search", {"page_size": 10}))
    assert one == ten


def test_search_selector_query_count_is_bounded(world, start, django_assert_max_num_queries):
    attempts_for(world, start, 10)
    # count, page, personas' names, 4 facets x (counts + labels), the instructor's scope ids
    with django_assert_max_num_queries(13):
        result = selectors.attempt_search(actor=world.instructor, params={"page_size": 10})
        serialized = AttemptOut(result.rows, many=True).data
    assert len(result.rows) == 10
    assert all(row["personas"] and row["persona"] == row["personas"][0] for row in serialized)


def test_facets_count_over_the_other_filters_and_ignore_their_own(world, start, make_client):
    attempts_for(world, start, 3)  # learner x2, learner2 x1
    start(world.learner2, world.practice)
    client = make_client(world.admin)
    body = client.op(
        "attempt/search", {"profile_ids": [str(world.learner.pk)], "practice": False}
    ).json()
    assert body["total_count"] == 2
    learners = {option["id"]: option["count"] for option in body["learner_filter"]["options"]}
    assert learners == {str(world.learner.pk): 2, str(world.learner2.pk): 1}
    assert body["learner_filter"]["selected"] == [str(world.learner.pk)]
    assert body["simulation_filter"]["options"] == [
        {"id": str(world.simulation.pk), "label": world.simulation.title, "count": 2}
    ]
    assert body["cohort_filter"]["options"][0]["label"] == "TAs Fall"
    narrowed = client.op("attempt/search", {"department_search": "math"}).json()
    assert narrowed["department_filter"]["options"] == []
    assert narrowed["total_count"] == 4


def test_every_seed_filter_narrows_the_rows(world, start, make_client):
    first, second, third = attempts_for(world, start, 3)
    practice = start(world.learner2, world.practice, infinite_mode=True)
    Attempt.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=10))
    client = make_client(world.admin)

    def ids(body):
        response = client.op("attempt/search", body)
        assert response.status_code == 200, response.content
        return {row["attempt_id"] for row in response.json()["attempts"]}

    everyone = {str(a.pk) for a in (first, second, third, practice)}
    assert ids({}) == everyone
    assert ids({"practice": True}) == {str(practice.pk)}
    assert ids({"infinite_mode": True}) == {str(practice.pk)}
    assert ids({"target_profile_id": str(world.learner2.pk)}) == {str(second.pk), str(practice.pk)}
    assert ids({"profile_ids": [str(world.learner.pk)]}) == {str(first.pk), str(third.pk)}
    assert ids({"cohort_ids": [str(world.cohort.pk)]}) == everyone
    assert ids({"department_ids": [str(world.elsewhere.pk)]}) == set()
    assert ids({"simulation_ids": [str(world.simulation.pk)]}) == everyone
    scenario = world.simulation.ordered_scenarios()[1]
    assert ids({"scenario_ids": [str(scenario.pk)]}) == everyone
    assert str(first.pk) not in ids(
        {"start_date": (timezone.now() - timedelta(days=1)).isoformat()}
    )
    assert ids({"end_date": (timezone.now() - timedelta(days=5)).isoformat()}) == {str(first.pk)}
    assert ids({"search": world.learner2.name}) == {str(second.pk), str(practice.pk)}
    assert ids({"simulation_search": "no such thing"}) == everyone  # narrows options, not rows
    page = client.op("attempt/search", {"page_size": 2, "page": 1}).json()
    offset = client.op("attempt/search", {"page_size": 2, "page_offset": 2}).json()
    assert page["attempts"] == offset["attempts"] and len(page["attempts"]) == 2
    assert client.op("attempt/search", {"profile_ids": ["not-a-uuid"]}).status_code == 400
    assert client.op("attempt/search", {"page_size": 0}).status_code == 400


def test_export_query_count_is_the_same_for_1_and_10_attempts(world, start):
    def export(count):
        attempts = attempts_for(world, start, count)
        for attempt in attempts:
            messaging.attempt_message(
                actor=attempt.profile,
                attempt_id=attempt.pk,
                chat_id=attempt.chats.get(position=0).pk,
                message="What worries you most?",
                assistant_content="Everything.",
            )
            lifecycle.attempt_end(
                actor=attempt.profile,
                attempt_id=attempt.pk,
                chat_id=attempt.chats.get(position=0).pk,
                grade=True,
            )
        selection = Attempt.objects.filter(pk__in=[a.pk for a in attempts])
        return queries_of(
            lambda: exports.attempt_export(actor=world.admin, attempts=selection, view="dashboard")
        )

    assert export(1) == export(10)
    latest = Upload.objects.order_by("-created_at").first()
    archive = zipfile.ZipFile(io.BytesIO(latest.file.read()))
    transcripts = [name for name in archive.namelist() if name.endswith(".jsonl")]
    assert len(transcripts) == 10
    rubric = archive.read("rubric_scores.csv").decode().splitlines()
    assert len(rubric) == 1 + 10 * 4  # header + 4 standards per graded chat
    assert latest.row_count == 10


def test_get_bundle_query_count_does_not_grow_with_messages(world, start, make_client):
    attempt = start(world.learner, world.home)
    chat = attempt.chats.get(position=0)
    client = make_client(world.learner)

    def say(times):
        for _ in range(times):
            messaging.attempt_message(
                actor=world.learner,
                attempt_id=attempt.pk,
                chat_id=chat.pk,
                message="How are you?",
                assistant_content="Fine.",
            )
        return queries_of(lambda: client.op("attempt/get", {"attempt_id": str(attempt.pk)}))

    assert say(1) == say(10)


LIVE = {"start_date": "2000-01-01T00:00:00Z"}  # a filter the counts cannot answer: counts live


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"practice": False},
        {"show_archived": True},
        {"is_archived": True},
        {"profile_ids": ["learner2"]},
        {"cohort_ids": ["cohort"], "simulation_search": "sim"},
        {"target_profile_id": "learner"},
    ],
)
def test_materialised_counts_answer_what_counting_the_attempts_answers(
    world, start, make_client, params
):
    attempts_for(world, start, 4)
    start(world.learner2, world.practice)
    archived = start(world.learner, world.home)
    admin = make_client(world.admin)
    assert admin.op("attempt/archive", {"attempt_ids": [str(archived.pk)]}).status_code == 200
    names = {"learner": world.learner.pk, "learner2": world.learner2.pk, "cohort": world.cohort.pk}

    def named(value):
        if isinstance(value, list):
            return [str(names.get(item, item)) for item in value]
        return str(names[value]) if value in names else value

    body = {key: named(value) for key, value in params.items()}
    counted = admin.op("attempt/search", body).json()
    live = admin.op("attempt/search", {**body, **LIVE}).json()
    assert counted["total_count"] == live["total_count"]
    for facet in ("simulation", "department", "cohort", "learner"):
        assert counted[f"{facet}_filter"] == live[f"{facet}_filter"], facet
    assert [row["attempt_id"] for row in counted["attempts"]] == [
        row["attempt_id"] for row in live["attempts"]
    ]


def test_the_fast_history_row_equals_the_declared_fields(world, start):
    from rest_framework import serializers

    from attempts.serializers import AttemptOut

    attempt = start(world.learner, world.home)
    lifecycle.attempt_end(
        actor=world.learner,
        attempt_id=attempt.pk,
        chat_id=attempt.chats.get(position=0).pk,
        given={"score": 55},
    )
    for row in Attempt.objects.for_api().filter(pk=attempt.pk):
        fast = AttemptOut(row).data
        declared = serializers.ModelSerializer.to_representation(AttemptOut(row), row)
        assert fast == declared
        assert fast["score"] == 55 and fast["persona"] and fast["cohort_name"] == "TAs Fall"


def test_the_facets_in_one_statement_answer_what_a_query_per_facet_answers(world, start):
    attempts_for(world, start, 4)
    start(world.learner2, world.practice)
    for actor in (world.admin, world.instructor, world.learner):
        params: dict = {}
        counting = selectors.counting_for(
            actor=actor, params=params, apply=selectors.filter_applier(params)
        )
        facets = selectors.family().facets
        whole = next(facet for facet in facets if facet.name == "simulation")
        together = counting().every_facet(facets, whole)
        for facet, found in zip(facets, together, strict=True):
            if facet is whole:
                key = lambda row: str(row["id"])  # noqa: E731 - groups come in no order
                assert sorted(found, key=key) == sorted(counting().groups(facet), key=key)
            else:
                assert found == counting().facet(facet, params), facet.name
        assert sum(row["count"] for row in together[0]) == counting().total() > 0
