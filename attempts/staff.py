"""Staff page of an attempt: every chat's transcript with its hints and its grade."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.shortcuts import render

from attempts import selectors
from attempts.models import Chat, Message
from system.staff import staff_page


@dataclass
class ChatPage:
    chat: Chat
    messages: list[Message]

    @property
    def flagged(self) -> int:
        return sum(1 for message in self.messages if message.fidelity_flags)


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
    return render(
        request,
        "attempts/transcript.html",
        {
            "attempt": attempt,
            "chats": _transcripts(chats),
            "completion": selectors.completion_of(attempt),
            "actor": request.actor,
        },
    )
