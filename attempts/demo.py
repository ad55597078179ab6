"""Demo attempts on 'Office hours: CS-180', made through the services and the configured model."""

from __future__ import annotations

from attempts import lifecycle, messaging, steps
from attempts.models import AttemptStatus
from glow.accounts.models import Organization, Profile
from glow.catalog.demo import find
from glow.catalog.models import Home, Practice

GOOD = [
    "It sounds like recursion has been really frustrating, and that's okay. What have you tried "
    "so far? Let's trace the base case together with a small example.",
    "I understand you're upset about question 4, and I hear you. The regrade policy is a written "
    "request within one week; the next step is to send it by Friday and we'll review it.",
    "I appreciate you being honest with me. I'm not accusing you of anything: the policy is that "
    "I report the similarity to the instructor. What questions do you have about the process?",
]
WEAK = [
    "Just read the lecture notes again.",
    "The grade is final, calm down.",
    "You copied, so you'll have to deal with it.",
]


def _run(learner, entry, *, key: str, lines: list[str], chats: int, complete: bool, stdout):
    """One demo attempt; a model that fails (a real one may) leaves it in progress, said so."""
    entry_id = {"practice_id": entry.pk} if isinstance(entry, Practice) else {"home_id": entry.pk}
    # Each attempt has its own Idempotency-Key: a rerun finds it and changes nothing.
    attempt = lifecycle.attempt_start(actor=learner, idempotency_key=key, **entry_id)
    if attempt.message_count or attempt.status == AttemptStatus.COMPLETED:
        return attempt, False
    try:
        _converse(learner, attempt, lines=lines, chats=chats, complete=complete)
    except steps.ModelUnavailable as exc:
        stdout.write(f"  attempts: {key} left in progress, the model failed: {exc}")
    return attempt, True


def _converse(learner, attempt, *, lines: list[str], chats: int, complete: bool) -> None:
    chat_ids = list(attempt.chats.order_by("position").values_list("pk", flat=True))
    for position in range(chats):
        if position:
            lifecycle.attempt_next(actor=learner, attempt_id=attempt.pk)
        messaging.attempt_message(
            actor=learner,
            attempt_id=attempt.pk,
            chat_id=chat_ids[position],
            message=lines[position % len(lines)],
        )
        if complete or position < chats - 1:
            lifecycle.attempt_end(
                actor=learner, attempt_id=attempt.pk, chat_id=chat_ids[position], grade=True
            )
    if complete:
        lifecycle.attempt_complete(actor=learner, attempt_id=attempt.pk, message="Demo run")


def seed(*, stdout) -> None:
    demo = Organization.objects.get(name="Demo University")
    # Found by the id the catalog demo gave them: an instructor may have renamed them since.
    home = find(Home, demo, "CS-180 TA training: office hours")
    practice = find(Practice, demo, "Practice: office hours")
    if home is None or practice is None:
        stdout.write("  attempts: the demo home or practice entry was deleted; none started")
        return
    learner1 = Profile.objects.get(user__username="learner1")
    learner2 = Profile.objects.get(user__username="learner2")
    runs = [
        (learner1, home, "demo-learner1-complete", GOOD, 3, True),
        (learner1, practice, "demo-learner1-practice", GOOD, 1, False),
        (learner2, home, "demo-learner2-complete", WEAK, 3, True),
        (learner2, home, "demo-learner2-in-progress", WEAK[1:], 2, False),
    ]
    made = 0
    for learner, entry, key, lines, chats, complete in runs:
        _, created = _run(
            learner, entry, key=key, lines=lines, chats=chats, complete=complete, stdout=stdout
        )
        made += created
    stdout.write(
        f"  attempts: {made} new demo attempts ({len(runs)} in all) for learner1, learner2"
    )
