"""The learner's pages: Home, Practice, Chat, Results and History.

Thin views: each parses, calls the same service or selector the API op calls, and renders.
The Chat page's script drives the API itself (message, stop, draft, watch); every form here
is also a plain-HTML fallback that works without it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from attempts import journey, lifecycle, messaging, progress, selectors
from attempts.charts import line_chart
from attempts.models import ChatStatus, Role
from glow.accounts.models import Profile
from glow.core.errors import ApplicationError, NotFound
from glow.core.models import Draft
from glow.core.throttling import page_throttle


def learner_page(view: Callable) -> Callable:
    """Signed-in people with a Glow profile; anyone else goes to sign in. An id the actor may
    not see (another learner's attempt, another organization's) answers 404."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        try:
            request.actor = request.user.profile
        except Profile.DoesNotExist:
            return render(request, "learn/no_profile.html", status=403)
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.detail)

    return wrapper


def root(request):
    """`/`: sign in, or go to your Home."""
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("learn-home"))
    return redirect("learn-home")


def _entries_page(request, *, kind: str, template: str):
    return render(
        request,
        template,
        {
            "entries": progress.learner_entries(actor=request.actor, kind=kind),
            # One key per rendering: a double-clicked Start answers the same attempt.
            "start_key": uuid.uuid4().hex,
        },
    )


@learner_page
def home(request):
    return _entries_page(request, kind="home", template="learn/home.html")


@learner_page
def practice(request):
    return _entries_page(request, kind="practice", template="learn/practice.html")


@learner_page
@require_POST
@page_throttle("start")
def start(request):
    """Start an attempt from a home or practice entry (attempt/start) and open its Chat."""
    kind = "practice" if request.POST.get("practice_id") else "home"
    try:
        attempt = lifecycle.attempt_start(
            actor=request.actor,
            home_id=request.POST.get("home_id") or None,
            practice_id=request.POST.get("practice_id") or None,
            idempotency_key=request.POST.get("start_key", ""),
            session=getattr(request, "glow_session", None),
        )
    except ApplicationError as exc:
        context = {
            "entries": progress.learner_entries(actor=request.actor, kind=kind),
            "start_key": uuid.uuid4().hex,
            "error": exc.detail,
        }
        template = "learn/practice.html" if kind == "practice" else "learn/home.html"
        return render(request, template, context, status=exc.status_code)
    return redirect("learn-chat", attempt_id=attempt.pk)


def _attempt(request, attempt_id):
    """The attempt if the actor may read it (their own, or staff in scope), else 404."""
    attempt, _ = selectors.attempt_for_get(actor=request.actor, pk=attempt_id)
    if attempt is None:
        raise NotFound("No attempt with that id.")
    return attempt


def speaker_name(persona) -> str:
    """What the conversation calls the student: "Morgan" of "Morgan, angry about a grade"."""
    return persona.title.split(",")[0].strip() or persona.title


def _draft_of(actor, attempt) -> Draft | None:
    return (
        Draft.objects.filter(author=actor, family="attempt", artifact_id=attempt.pk)
        .order_by("-updated_at")
        .first()
    )


def _chat_context(request, attempt, *, chat_id=None, error: str = "", typed: str | None = None):
    bundle = selectors.attempt_bundle(actor=request.actor, attempt=attempt, chat_id=chat_id)
    chat = bundle["chat"]
    options = bundle["available_continuation_options"]
    draft = _draft_of(request.actor, attempt) if bundle["is_own_attempt"] else None
    draft_text = ""
    if draft is not None and str(draft.data.get("chat_id")) == str(chat.pk if chat else ""):
        draft_text = str(draft.data.get("message") or "")
    last_reply = next((m for m in reversed(bundle["messages"]) if m.role == Role.ASSISTANT), None)
    is_current = chat is not None and chat.pk == bundle["current_chat_id"]
    scenario = chat.scenario if chat else None
    return {
        "goal": getattr(scenario, "learner_goal", "") if scenario else "",
        "picture_url": progress.picture_url(scenario),
        "chat_config": {
            "attemptId": str(attempt.pk),
            "chatId": str(chat.pk) if chat else None,
            "groupId": str(attempt.group_id) if attempt.group_id else None,
            "attemptVersion": attempt.version,
            "draftId": str(draft.pk) if draft else None,
            "personaName": speaker_name(scenario.persona) if scenario else "",
            "voice": bool(chat and chat.audio_mode),
            "api": "/api/v5/artifacts/attempt/",
        },
        "attempt": attempt,
        "bundle": bundle,
        "chat": chat,
        "scenario": chat.scenario if chat else None,
        "persona": chat.scenario.persona if chat else None,
        "speaker": speaker_name(chat.scenario.persona) if chat else "",
        "messages": bundle["messages"],
        "hints": (last_reply.hints if last_reply else []) if is_current else [],
        "show_hint": request.GET.get("hint") == "1",
        "can_message": options["can_message"] and is_current,
        "can_advance": bundle["is_own_attempt"]
        and bundle["is_active"]
        and is_current
        and chat.status in (ChatStatus.ACTIVE, ChatStatus.ENDED),
        # Time up: the attempt can only be finished (attempt/message refuses), so Finish it is.
        "has_next": not bundle["timer"]["expired"]
        and (attempt.infinite_mode or any(c.status == ChatStatus.PENDING for c in bundle["chats"])),
        "read_only": not bundle["is_own_attempt"],
        "draft": draft,
        "typed": draft_text if typed is None else typed,
        "error": error,
        "is_current": is_current,
    }


@learner_page
def chat(request, attempt_id):
    """The conversation with the current scenario's persona (or a past chat, read-only)."""
    attempt = _attempt(request, attempt_id)
    chat_id = request.GET.get("chat") or None
    try:
        context = _chat_context(request, attempt, chat_id=chat_id)
    except (ValueError, ApplicationError):
        raise Http404("No chat with that id in this attempt.")
    return render(request, "learn/chat.html", context)


@learner_page
@require_POST
@page_throttle("message")
def send(request, attempt_id):
    """The plain-form fallback of attempt/message: the reply arrives whole, then the page."""
    attempt = _attempt(request, attempt_id)
    text = request.POST.get("message", "")
    try:
        messaging.attempt_message(
            actor=request.actor,
            attempt_id=attempt.pk,
            chat_id=request.POST.get("chat_id"),
            message=text,
            session=getattr(request, "glow_session", None),
        )
    except ApplicationError as exc:
        # Nothing typed is lost: the page comes back with the text still in the box.
        context = _chat_context(request, attempt, error=exc.detail, typed=text)
        return render(request, "learn/chat.html", context, status=exc.status_code)
    journey.attempt_draft_clear(actor=request.actor, attempt=attempt)
    return redirect("learn-chat", attempt_id=attempt.pk)


@learner_page
@require_POST
@page_throttle("end")
def advance(request, attempt_id):
    """Next scenario or Finish: end the chat (graded), then attempt/next or attempt/complete.

    Irreversible, so it asks first: without `confirm`, it answers a confirmation page (the
    page's script asks in a dialog and sends `confirm` itself).
    """
    attempt = _attempt(request, attempt_id)
    action = "finish" if request.POST.get("action") == "finish" else "next"
    if request.POST.get("confirm") != "yes":
        context = _chat_context(request, attempt)
        return render(request, "learn/confirm.html", {**context, "action": action})
    try:
        result = journey.attempt_advance(
            actor=request.actor,
            attempt_id=attempt.pk,
            finish=action == "finish",
            session=getattr(request, "glow_session", None),
        )
    except ApplicationError as exc:
        context = _chat_context(request, attempt, error=exc.detail)
        return render(request, "learn/chat.html", context, status=exc.status_code)
    if result.completed:
        return redirect("learn-results", attempt_id=attempt.pk)
    return redirect("learn-chat", attempt_id=attempt.pk)


@learner_page
def results(request, attempt_id):
    """The rubric per standard group and criterion, the grader's feedback and quoted turns."""
    attempt = _attempt(request, attempt_id)
    return render(
        request,
        "learn/results.html",
        progress.attempt_results(actor=request.actor, attempt=attempt),
    )


@learner_page
def history(request):
    """Every attempt of the learner, and scores over time per simulation and per criterion."""
    history = progress.learner_history(actor=request.actor)
    charts = [
        {
            "progress": item,
            "svg": line_chart(
                chart_id=f"progress-{index}",
                title=f"{item.title}: score and criteria per attempt",
                series=[
                    ("Score", [score for _, score in item.scores]),
                    *((c.name, [p for _, p in c.points]) for c in item.criteria),
                ],
            ),
        }
        for index, item in enumerate(history.progress)
    ]
    return render(request, "learn/history.html", {"history": history, "charts": charts})
