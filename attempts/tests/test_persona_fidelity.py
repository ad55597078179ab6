"""The student opens when the scenario says so; persona replies carry fidelity flags that staff
see on the transcript and count per simulation."""

from __future__ import annotations

import pytest
from django.utils.html import escape

from attempts import lifecycle, messaging, selectors
from attempts.models import Message, Role
from glow.ai import LocalProvider
from glow.catalog.tests.factories import PracticeFactory, SimulationFactory
from system.tests.factories import sign_in

pytestmark = pytest.mark.django_db


def _opens(scenario, line: str = "") -> None:
    scenario.persona_opens, scenario.opening_line = True, line
    scenario.save(update_fields=["persona_opens", "opening_line"])


def test_the_student_opens_each_chat_as_it_becomes_active(world, start):
    first, second = world.simulation.ordered_scenarios()
    _opens(first, "Hi, can we talk about my grade?")
    second.persona.concerns = [{"topic": "the lab", "worry": "I failed the lab again."}]
    second.persona.save(update_fields=["concerns"])
    _opens(second)  # no line of its own: the student's first concern opens

    attempt = start(world.learner, world.practice)
    chats = list(attempt.chats.order_by("position"))
    opening = Message.objects.get(chat=chats[0])
    assert (opening.role, opening.content) == (Role.ASSISTANT, "Hi, can we talk about my grade?")
    assert not Message.objects.filter(chat=chats[1]).exists()  # not before the chat is active
    attempt.refresh_from_db()
    assert attempt.message_count == 1

    reply = messaging.attempt_message(
        actor=world.learner, attempt_id=attempt.pk, chat_id=chats[0].pk, message="Sure, go ahead."
    )
    assert reply.user_message.parent_id == opening.pk
    lifecycle.attempt_end(actor=world.learner, attempt_id=attempt.pk, chat_id=chats[0].pk)
    lifecycle.attempt_next(actor=world.learner, attempt_id=attempt.pk)
    assert list(Message.objects.filter(chat=chats[1]).values_list("content", flat=True)) == [
        "I failed the lab again."
    ]


def test_a_scenario_the_learner_opens_starts_empty(world, start):
    attempt = start(world.learner, world.practice)
    assert not Message.objects.filter(chat__attempt=attempt).exists()


def _flagging_provider(monkeypatch, text: str) -> None:
    monkeypatch.setattr(LocalProvider, "_answer", lambda self, request: (text, None))


def test_flagged_replies_are_stored_and_marked_for_staff(world, start, client, monkeypatch):
    attempt = start(world.learner, world.home)
    chat = attempt.chats.order_by("position").first()
    messaging.attempt_message(
        actor=world.learner, attempt_id=attempt.pk, chat_id=chat.pk, message="Hello there."
    )
    _flagging_provider(monkeypatch, "As an AI language model, I have no grade.")
    messaging.attempt_message(
        actor=world.learner, attempt_id=attempt.pk, chat_id=chat.pk, message="How are you?"
    )
    faithful, broken = Message.objects.filter(chat=chat, role=Role.ASSISTANT).order_by("seq")
    assert faithful.fidelity_flags == []
    assert [flag["code"] for flag in broken.fidelity_flags] == ["character"]

    sign_in(client, world.instructor)
    html = client.get(f"/staff/attempts/{attempt.pk}/").content.decode()
    assert "1 flagged persona turn" in html
    assert html.count('data-flagged="true"') == 1
    assert escape(broken.fidelity_flags[0]["detail"]) in html


def test_flagged_rate_per_simulation_is_scoped_and_counted_in_one_statement(
    world, start, monkeypatch, outsider, django_assert_max_num_queries
):
    other = SimulationFactory(organization=world.organization, department=world.department)
    other_practice = PracticeFactory(
        organization=world.organization, department=world.department, simulation=other
    )
    for entry, text in ((world.practice, "As an AI, I cannot."), (other_practice, "Fine.")):
        _flagging_provider(monkeypatch, text)
        attempt = start(world.learner, entry)
        chat = attempt.chats.order_by("position").first()
        for line in ("Hi.", "What happened?"):
            messaging.attempt_message(
                actor=world.learner, attempt_id=attempt.pk, chat_id=chat.pk, message=line
            )

    with django_assert_max_num_queries(3):  # the actor's scope, then one grouped count
        rates = selectors.persona_fidelity_by_simulation(actor=world.instructor)
    assert (rates[world.simulation.pk].flagged, rates[world.simulation.pk].total) == (2, 2)
    # "Fine." then "Fine." again: the second repeats the first verbatim.
    assert (rates[other.pk].flagged, rates[other.pk].total) == (1, 2)
    assert rates[other.pk].rate == 0.5
    assert selectors.persona_fidelity_by_simulation(actor=outsider) == {}
    assert selectors.persona_fidelity_by_simulation(actor=world.stranger) == {}
    only = selectors.persona_fidelity_by_simulation(actor=world.admin, simulation_ids=[other.pk])
    assert list(only) == [other.pk]
