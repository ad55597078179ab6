"""generate for every family: handles at once, events in seed-004 order, failures, idempotency, scoping."""

from __future__ import annotations

import pytest

from glow.ai import ProviderError
from glow.ai.local import LocalProvider
from glow.catalog import models as m
from glow.catalog.tests.factories import PersonaFactory
from glow.core.generation import Generator
from glow.core.models import Upload
from glow.core.registry import registry
from system import events, generation
from system.models import Event, Group, Run, RunStatus

GENERATABLE = [
    "persona",
    "scenario",
    "rubric",
    "simulation",
    "agent",
    "eval",
    "tool",
    "document",
    "field",
    "parameter",
]
MODELS = {
    "persona": m.Persona,
    "scenario": m.Scenario,
    "rubric": m.Rubric,
    "simulation": m.Simulation,
    "agent": m.Agent,
    "eval": m.Eval,
    "tool": m.Tool,
    "document": m.Document,
    "field": m.InputField,
    "parameter": m.ParameterSet,
}


def event_log(run_id) -> list[tuple[str, dict]]:
    return [
        (event.event_type, event.payload)
        for event in Event.objects.filter(run_id=run_id).order_by("seq")
    ]


def types(log) -> list[str]:
    return [event_type for event_type, _ in log]


def assert_seed_order(log, *, run: Run) -> None:
    """Seed 004's ordering rules, and the envelope on every event."""
    names = types(log)
    for _, payload in log:
        assert payload["group_id"] == str(run.group_id)
        assert payload["run_id"] == str(run.pk)
    assert [payload["seq"] for _, payload in log] == list(range(1, len(log) + 1))
    terminal = [i for i, name in enumerate(names) if name in events.TERMINAL_EVENTS]
    assert terminal == [len(names) - 1], "exactly one terminal event, and it is last"
    completed = [p["completed_resources"] for name, p in log if name == events.PROGRESS]
    assert completed == sorted(completed), "progress is monotonic"
    if events.SAVED in names:
        assert names.index(events.SAVED) < names.index(events.COMPLETE)
        last_progress = max(i for i, name in enumerate(names) if name == events.PROGRESS)
        assert last_progress < names.index(events.SAVED)
    if events.MEDIA_COMPLETE in names:
        started = [
            i
            for i, (name, p) in enumerate(log)
            if name == events.MEDIA_PROGRESS and p["status"] == "started"
        ]
        assert started and started[0] < names.index(events.MEDIA_COMPLETE)


def test_persona_generate_answers_handles_and_saves_the_persona(admin_client):
    response = admin_client.op(
        "persona/generate",
        {"instructions": ["An anxious, nervous first-year student, intensity 7"]},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"group_id", "run_id", "produced_media"}
    assert body["produced_media"] == []
    run = Run.objects.get(pk=body["run_id"])
    assert str(run.group_id) == body["group_id"]
    assert (run.kind, run.family, run.status) == ("generate", "persona", RunStatus.SUCCEEDED)
    assert run.total_tokens > 0
    log = event_log(run.pk)
    assert types(log) == [events.PROGRESS, events.SAVED, events.COMPLETE]
    assert_seed_order(log, run=run)
    progress = log[0][1]
    assert progress["completed_resources"] == progress["total_resources"] == 1
    assert progress["percentage"] == 100
    assert progress["last_completed_resource"] == "persona"
    persona = m.Persona.objects.get(pk=log[1][1]["artifact_id"])
    assert log[2][1]["success"] is True
    assert log[2][1]["artifact_id"] == str(persona.pk)
    assert run.artifact_id == persona.pk
    assert persona.organization_id == admin_client.profile.organization_id
    assert {"anxious", "nervous"} <= set(persona.traits)
    assert persona.intensity == 7


@pytest.mark.parametrize("family", GENERATABLE)
def test_every_catalog_family_generates_a_usable_row(admin_client, org_admin, family):
    PersonaFactory(organization=org_admin.organization)  # a scenario's student comes from here
    response = admin_client.op(
        f"{family}/generate",
        {"instructions": ["Office hours with a student upset about a grade; ask open questions"]},
    )
    assert response.status_code == 200, response.content
    run = Run.objects.get(pk=response.json()["run_id"])
    log = event_log(run.pk)
    assert_seed_order(log, run=run)
    assert types(log)[-2:] == [events.SAVED, events.COMPLETE]
    row = MODELS[family].objects.get(pk=log[-1][1]["artifact_id"])
    # What generate saved answers through the family's own get.
    got = admin_client.op(f"{family}/get", {f"{family}_id": str(row.pk)})
    assert got.status_code == 200
    problems = admin_client.op(f"{family}/problem", {f"{family}_id": str(row.pk)})
    if problems.status_code == 200 and family in ("rubric", "simulation"):
        assert problems.json()["problems"] == []


def test_scenario_image_draws_a_png_and_announces_it(admin_client, org_admin):
    student = PersonaFactory(organization=org_admin.organization)
    response = admin_client.op(
        "scenario/generate",
        {
            "modality": "image",
            "title": "University Office",
            "instructions": "Wide-angle shot, late afternoon light, books on the desk",
        },
    )
    assert response.status_code == 200, response.content
    run = Run.objects.get(pk=response.json()["run_id"])
    log = event_log(run.pk)
    assert_seed_order(log, run=run)
    media = [(name, p) for name, p in log if name.startswith("GenerationMedia")]
    assert [(name, p.get("status")) for name, p in media] == [
        (events.MEDIA_PROGRESS, "started"),
        (events.MEDIA_PROGRESS, "in_progress"),
        (events.MEDIA_COMPLETE, None),
    ]
    done = media[-1][1]
    assert (done["modality"], done["mime_type"]) == ("image", "image/png")
    upload = Upload.objects.get(pk=done["upload_id"])
    scenario = m.Scenario.objects.get(pk=log[-1][1]["artifact_id"])
    assert scenario.title == "University Office"
    assert (upload.family, upload.artifact_id) == ("scenario", scenario.pk)
    with upload.file.open("rb") as handle:
        content = handle.read()
    assert content.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(content) == done["file_size"] == upload.size
    # A scenario's generate makes the scenario and its image, never a persona of its own
    # (the scene's words "Wide-angle shot" once became a student's name).
    progress = [p for name, p in log if name == events.PROGRESS]
    assert [p["last_completed_resource"] for p in progress] == ["scenario", "image"]
    assert {p["total_resources"] for p in progress} == {2}
    assert list(m.Persona.objects.values_list("pk", flat=True)) == [student.pk]
    assert scenario.persona_id == student.pk
    downloaded = admin_client.op("scenario/image/download", {"upload_id": done["upload_id"]})
    assert downloaded.status_code == 200
    assert b"".join(downloaded.streaming_content).startswith(b"\x89PNG")


def test_a_named_persona_is_used_instead_of_generating_one(admin_client, org_admin):
    persona = PersonaFactory(organization=org_admin.organization)
    response = admin_client.op(
        "scenario/generate",
        {"instructions": ["A late submission"], "config": {"params": {"persona_id": persona.pk}}},
    )
    run = Run.objects.get(pk=response.json()["run_id"])
    scenario = m.Scenario.objects.get(pk=run.artifact_id)
    assert scenario.persona_id == persona.pk
    assert m.Persona.objects.count() == 1
    progress = [p for name, p in event_log(run.pk) if name == events.PROGRESS]
    assert [p["last_completed_resource"] for p in progress] == ["scenario"]


def test_a_scenario_takes_the_best_fitting_persona_and_never_makes_one(admin_client, org_admin):
    organization = org_admin.organization
    PersonaFactory(organization=organization, title="Quinn, bored in lab", traits=["bored"])
    chosen = PersonaFactory(
        organization=organization, title="Riley, angry about a regrade", traits=["angry"]
    )
    response = admin_client.op(
        "scenario/generate", {"instructions": ["An angry student wants a regrade on the final"]}
    )
    run = Run.objects.get(pk=response.json()["run_id"])
    assert m.Scenario.objects.get(pk=run.artifact_id).persona_id == chosen.pk
    assert m.Persona.objects.count() == 2


def test_an_image_scenario_without_any_persona_fails_saying_what_to_name(admin_client):
    response = admin_client.op(
        "scenario/generate",
        {"modality": "image", "title": "University Office", "instructions": ["Wide-angle shot"]},
    )
    run = Run.objects.get(pk=response.json()["run_id"])
    log = event_log(run.pk)
    assert types(log)[-1] == events.ERROR
    assert "persona_id" in log[-1][1]["message"]
    assert not m.Persona.objects.exists() and not m.Scenario.objects.exists()


def test_persona_generate_honours_traits_intensity_and_topic(admin_client):
    response = admin_client.op(
        "persona/generate", {"instructions": ["Aggressive student in CS-180, intensity 7"]}
    )
    persona = m.Persona.objects.get(pk=Run.objects.get(pk=response.json()["run_id"]).artifact_id)
    assert "aggressive" in persona.traits
    assert not {"curious", "polite"} & set(persona.traits)
    assert persona.intensity == 7
    assert any("CS-180" in concern["topic"] for concern in persona.concerns)


def test_params_override_the_drafted_fields(admin_client):
    response = admin_client.op(
        "persona/generate",
        {"instructions": ["A calm student"], "config": {"params": {"intensity": 2}}},
    )
    run = Run.objects.get(pk=response.json()["run_id"])
    assert m.Persona.objects.get(pk=run.artifact_id).intensity == 2


def test_a_provider_failure_is_an_error_event_and_a_failed_run(admin_client, monkeypatch):
    def refuse(self, request):
        raise ProviderError("The model is over capacity.")

    monkeypatch.setattr(LocalProvider, "_complete", refuse)
    response = admin_client.op("persona/generate", {"instructions": ["A shy student"]})
    assert response.status_code == 200
    run = Run.objects.get(pk=response.json()["run_id"])
    assert run.status == RunStatus.FAILED
    assert "over capacity" in run.error
    log = event_log(run.pk)
    assert types(log) == [events.ERROR]
    assert_seed_order(log, run=run)
    assert log[0][1]["resource_type"] == "persona"
    assert log[0][1]["message"] == "The model is over capacity."
    assert not m.Persona.objects.exists()


def test_a_failure_midway_keeps_what_was_saved(admin_client, monkeypatch):
    complete = LocalProvider._complete

    def fail_on_scenarios(self, request):
        if request.context.get("family") == "scenario":
            raise ProviderError("Timed out.")
        return complete(self, request)

    monkeypatch.setattr(LocalProvider, "_complete", fail_on_scenarios)
    PersonaFactory(organization=admin_client.profile.organization)
    response = admin_client.op("simulation/generate", {"instructions": ["A grade dispute"]})
    run = Run.objects.get(pk=response.json()["run_id"])
    log = event_log(run.pk)
    assert types(log) == [events.PROGRESS, events.ERROR]
    assert_seed_order(log, run=run)
    assert log[0][1]["last_completed_resource"] == "rubric"
    assert log[1][1]["resource_type"] == "scenario"
    assert run.status == RunStatus.FAILED
    assert m.Rubric.objects.count() == 1  # partial failures keep what made it through
    assert not m.Scenario.objects.exists()


def test_refused_generated_data_is_an_error_event(admin_client, org_admin):
    response = admin_client.op(
        "eval/generate",
        {"instructions": ["An eval"], "config": {"params": {"rubric_id": str(org_admin.pk)}}},
    )
    run = Run.objects.get(pk=response.json()["run_id"])
    log = event_log(run.pk)
    assert types(log) == [events.ERROR]
    # A reference to a row the organization does not have reads as an unknown id.
    assert log[0][1]["message"] == f"Unknown rubric: {org_admin.pk}."
    assert run.status == RunStatus.FAILED


def test_an_unexpected_bug_fails_the_run_and_still_surfaces(admin_client, monkeypatch):
    def broken(ctx):
        raise RuntimeError("bug")

    family = registry.get("document")
    monkeypatch.setattr(
        family, "generator", Generator(run=broken, resources=lambda request: ["document"])
    )
    with pytest.raises(RuntimeError, match="bug"):
        admin_client.op("document/generate", {"instructions": ["Anything"]})
    run = Run.objects.get(family="document")
    assert run.status == RunStatus.FAILED
    assert types(event_log(run.pk)) == [events.ERROR]
    assert "unexpectedly" in event_log(run.pk)[0][1]["message"]


def test_client_run_id_answers_the_same_run(admin_client):
    body = {"instructions": ["A frustrated student"], "client_run_id": "cli-42"}
    first = admin_client.op("persona/generate", body).json()
    second = admin_client.op("persona/generate", body).json()
    assert first == second
    assert Run.objects.filter(client_run_id="cli-42").count() == 1
    assert m.Persona.objects.count() == 1


def test_someone_elses_client_run_id_is_a_conflict(admin_client, instructor, make_client):
    admin_client.op("persona/generate", {"instructions": ["x"], "client_run_id": "shared"})
    response = make_client(instructor).op(
        "persona/generate", {"instructions": ["y"], "client_run_id": "shared"}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "client_run_id_taken"


def test_runs_of_one_session_share_a_group_unless_one_is_named(admin_client):
    first = admin_client.op("persona/generate", {"instructions": ["A"]}).json()
    second = admin_client.op("persona/generate", {"instructions": ["B"]}).json()
    assert first["group_id"] == second["group_id"]
    assert first["run_id"] != second["run_id"]
    other = admin_client.op("rubric/generate", {"instructions": ["C"]}).json()
    assert other["group_id"] != first["group_id"]
    named = admin_client.op(
        "rubric/generate", {"instructions": ["D"], "group_id": first["group_id"]}
    ).json()
    assert named["group_id"] == first["group_id"]


def test_generate_refuses_bad_input_and_roles(admin_client, learner, make_client):
    assert admin_client.op("persona/generate", {}).status_code == 400
    assert admin_client.op("persona/generate", {"instructions": 5}).status_code == 400
    bad_modality = admin_client.op("persona/generate", {"instructions": ["x"], "modality": "image"})
    assert bad_modality.status_code == 400
    assert "modality" in bad_modality.json()["fields"]
    assert make_client(learner).op("persona/generate", {"instructions": ["x"]}).status_code == 403
    assert not Run.objects.exists()


def test_another_organizations_group_is_not_found(admin_client, outsider_client):
    ours = admin_client.op("persona/generate", {"instructions": ["A"]}).json()
    response = outsider_client.op(
        "persona/generate", {"instructions": ["B"], "group_id": ours["group_id"]}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    group = outsider_client.op("persona/group", {"group_id": ours["group_id"]})
    assert group.status_code == 404
    watch = outsider_client.get(f"/api/v5/artifacts/persona/watch?run_id={ours['run_id']}")
    assert watch.status_code == 404
    assert watch.json()["code"] == "not_found"
    watch_group = outsider_client.op("persona/watch", {"group_id": ours["group_id"]})
    assert watch_group.status_code == 404
    listed = outsider_client.op("persona/generations", {}).json()
    assert listed == {"items": [], "total_count": 0}


def test_watch_needs_a_run_or_group(admin_client):
    response = admin_client.get("/api/v5/artifacts/persona/watch", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 400
    assert "run_id" in response.json()["fields"]


def test_running_a_finished_run_again_changes_nothing(admin_client):
    run_id = admin_client.op("persona/generate", {"instructions": ["A"]}).json()["run_id"]
    before = event_log(run_id)
    generation.generation_execute(run_id=run_id)
    assert event_log(run_id) == before
    assert m.Persona.objects.count() == 1


def test_a_redelivered_half_done_run_finishes_without_duplicates(admin_client, monkeypatch):
    finish = generation.generation_complete

    def worker_killed(**kwargs):
        raise SystemExit("worker lost")  # not an Exception: nothing is recorded, as in a crash

    monkeypatch.setattr(generation, "generation_complete", worker_killed)
    PersonaFactory(organization=admin_client.profile.organization)
    with pytest.raises(SystemExit):
        admin_client.op("scenario/generate", {"instructions": ["A grade dispute"]})
    run = Run.objects.get()
    assert run.status == RunStatus.RUNNING
    monkeypatch.setattr(generation, "generation_complete", finish)
    generation.generation_execute(run_id=run.pk)  # the broker delivers the task again
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert (m.Persona.objects.count(), m.Scenario.objects.count()) == (1, 1)
    log = event_log(run.pk)
    assert types(log) == [events.PROGRESS, events.SAVED, events.COMPLETE]
    assert_seed_order(log, run=run)


def test_group_resolves_or_mints_the_actors_group(admin_client, org_admin):
    minted = admin_client.op("persona/group", {}).json()
    assert minted["family"] == "persona"
    again = admin_client.op("persona/group", {}).json()
    assert again["group_id"] == minted["group_id"]
    persona = PersonaFactory(organization=org_admin.organization)
    tied = admin_client.op("persona/group", {"persona_id": str(persona.pk)}).json()
    assert tied["artifact_id"] == str(persona.pk)
    assert tied["group_id"] != minted["group_id"]
    named = admin_client.op("persona/group", {"group_id": minted["group_id"]}).json()
    assert named["group_id"] == minted["group_id"]
    assert Group.objects.count() == 2


def test_group_for_another_organizations_row_is_not_found(admin_client, outsider_client, org_admin):
    persona = PersonaFactory(organization=org_admin.organization)
    response = outsider_client.op("persona/group", {"persona_id": str(persona.pk)})
    assert response.status_code == 404


def test_a_concurrent_retry_with_the_same_client_run_id_gets_the_winners_run(
    admin_client, monkeypatch
):
    winner = admin_client.op(
        "persona/generate", {"instructions": ["A"], "client_run_id": "race"}
    ).json()
    lookup = generation._run_by_client_id
    calls = []

    def not_yet_committed(**kwargs):
        # The first look happens before the winner commits; the insert then collides.
        calls.append(kwargs)
        return None if len(calls) == 1 else lookup(**kwargs)

    monkeypatch.setattr(generation, "_run_by_client_id", not_yet_committed)
    retry = admin_client.op("persona/generate", {"instructions": ["A"], "client_run_id": "race"})
    assert retry.status_code == 200
    assert retry.json()["run_id"] == winner["run_id"]
    assert len(calls) == 2
    assert Run.objects.count() == 1
