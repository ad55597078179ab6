"""Staff page of an attempt: every chat's transcript with its hints and its grade."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.shortcuts import render

from attempts import selectors
from attempts.models import Chat, Message
from glow.catalog.models import Standard
from glow.core.filters import is_uuid
from system.staff import staff_page


@dataclass
class ChatPage:
    chat: Chat
    messages: list[Message]
    criteria: list[dict] = field(default_factory=list)

    @property
    def flagged(self) -> int:
        return sum(1 for message in self.messages if message.fidelity_flags)


def _criteria(pages: list[ChatPage]) -> None:
    """Each graded chat's per-criterion score and the grader's evidence, names in one query."""
    ids = {
        str(entry.get("standard_id"))
        for page in pages
        if page.chat.grade_id
        for entry in page.chat.grade.standard_scores or []
    }
    names = {
        str(pk): name
        for pk, name in Standard.objects.filter(pk__in=[i for i in ids if is_uuid(i)]).values_list(
            "pk", "name"
        )
    }
    for page in pages:
        if not page.chat.grade_id:
            continue
        page.criteria = [
            {
                "name": names.get(str(entry.get("standard_id")), "Criterion"),
                "score": entry.get("score"),
                "points": entry.get("points"),
                "evidence": entry.get("feedback") or "",
            }
            for entry in page.chat.grade.standard_scores or []
        ]


def _transcripts(chats: list[Chat]) -> list[ChatPage]:
    """Each chat's current branch (retries replace earlier replies), from one query for all."""
    by_chat: dict = defaultdict(dict)
    for message in Message.objects.filter(chat__in=chats).order_by("seq"):
        by_chat[message.chat_id][message.pk] = message
    pages = []
    for chat in chats:
        messages = by_chat.get(chat.pk, {})
        branch, cursor = [], messages.get(chat.last_message_id)
        while cursor is not None:
            branch.append(cursor)
            cursor = messages.get(cursor.parent_id)
        branch.reverse()
        pages.append(ChatPage(chat=chat, messages=branch))
    return pages


@staff_page
def transcript(request, pk):
    attempt, _ = selectors.attempt_for_get(actor=request.actor, pk=pk)
    if attempt is None:
        # Out of scope and missing look alike; staff_page turns this into a 404.
        selectors.attempt_access(actor=request.actor, pk=pk)
    chats = selectors.chats_of(attempt)
    pages = _transcripts(chats)
    _criteria(pages)
    return render(
        request,
        "attempts/transcript.html",
        {
            "attempt": attempt,
            "chats": pages,
            "completion": selectors.completion_of(attempt),
            "actor": request.actor,
        },
    )
