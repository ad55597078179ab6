"""The attempt family's ops: thin views that parse, call one service or selector, and serialize."""

from __future__ import annotations

from functools import cache

from rest_framework import serializers as drf
from rest_framework.response import Response

from attempts import audio, exports, grading, lifecycle, messaging, reviews, rollups, selectors
from attempts import serializers as shapes
from attempts.models import GRADE_ENTRY_KINDS
from glow.core import serializers as core_shapes
from glow.core.errors import NotFound
from glow.core.exports import export_body
from glow.core.ops import STAFF, op
from glow.core.viewsets import ArtifactViewSet


@cache
def export_request(family) -> type:
    return core_shapes.make(
        "AttemptExportRequest",
        {
            **core_shapes.filter_fields(family),
            "view": drf.ChoiceField(
                choices=["attempt", "record", "dashboard"],
                required=False,
                allow_null=True,
                help_text="attempt (one attempt_id), record (one learner's history; "
                "target_profile_id, default yourself), dashboard (the filtered slice).",
            ),
            "attempt_id": core_shapes.StrictUUIDField(required=False, allow_null=True),
            "is_archived": drf.BooleanField(required=False, allow_null=True),
            "show_archived": drf.BooleanField(required=False, allow_null=True),
        },
    )


def _given_grade(data: dict) -> dict:
    names = ("score", "passed", "time_taken", *GRADE_ENTRY_KINDS)
    return {name: data[name] for name in names if data.get(name) is not None}


class AttemptViewSet(ArtifactViewSet):
    """Seed 001's attempt ops beside the universal ones."""

    @property
    def session(self):
        return getattr(self.request._request, "glow_session", None)

    @property
    def mcp(self) -> bool:
        return bool(getattr(self.request._request, "glow_mcp", False))

    # -- universal ops with attempt-specific bodies --------------------------------------------

    @op(
        "get",
        request=shapes.AttemptGetRequest,
        response=shapes.attempt_get_result,
        needs_model=True,
    )
    def get_op(self, request):
        """The canonical attempt bundle; chat_id picks which chat's messages come along.

        Inside the organization, an attempt the actor may not read answers 200 with
        attempt_exists: true and access_denied: true and nothing else; elsewhere, 404.
        """
        data = self.parse()
        attempt, exists = selectors.attempt_for_get(actor=self.actor, pk=data["attempt_id"])
        if attempt is None:
            if not exists:
                raise NotFound("No attempt with that id.")
            return Response(selectors.denied_bundle(actor=self.actor, exists=True))
        bundle = selectors.attempt_bundle(
            actor=self.actor, attempt=attempt, chat_id=data.get("chat_id")
        )
        return Response(shapes.AttemptGetResponse(bundle, context={"request": request}).data)

    @op(
        "search",
        request=core_shapes.search_request,
        response=core_shapes.search_response,
        needs_model=True,
    )
    def search(self, request):
        """History of attempts (HistoryResponse): hydrated rows, facets, total_count."""
        result = selectors.attempt_search(actor=self.actor, params=self.parse())
        return Response(self.search_body(result))

    # Archiving attempts recounts their learners' histories.
    archive_write = staticmethod(lifecycle.attempt_archive)

    def refresh_views(self) -> list[str]:
        return rollups.attempt_rollups_refresh(actor=self.actor)

    # -- the lifecycle --------------------------------------------------------------------------

    @op("start", request=shapes.AttemptStartRequest, response=shapes.AttemptStartResponse)
    def start(self, request):
        """Start an attempt from a home or practice entry: one chat per scenario, a stream group.

        An Idempotency-Key header makes retries answer the first attempt.
        """
        data = self.parse()
        attempt = lifecycle.attempt_start(
            actor=self.actor,
            home_id=data.get("home_id"),
            practice_id=data.get("practice_id"),
            infinite_mode=data.get("infinite_mode", False),
            idempotency_key=request.META.get("HTTP_IDEMPOTENCY_KEY", ""),
            session=self.session,
        )
        return Response(selectors.attempt_start_summary(attempt))

    @op("message", request=shapes.AttemptMessageRequest, response=shapes.AttemptMessageResponse)
    def message(self, request):
        """Send the learner's message; the persona's reply streams to the attempt's group.

        An agent client may pass assistant_content (and hints, contents) to skip the AI.
        """
        data = self.parse()
        result = messaging.attempt_message(
            actor=self.actor,
            attempt_id=data["attempt_id"],
            chat_id=data["chat_id"],
            message=data["message"],
            parent_message_id=data.get("parent_message_id"),
            assistant_content=data.get("assistant_content"),
            hints=data.get("hints"),
            contents=data.get("contents"),
            session=self.session,
            mcp=self.mcp,
        )
        reply = result.assistant_message
        return Response(
            {
                "chat_id": result.chat.pk,
                "user_message_id": result.user_message.pk,
                "assistant_message_id": reply.pk if reply else None,
                "assistant_content": reply.content if reply else None,
                "hints": reply.hints if reply else None,
                "stopped": bool(reply and reply.stopped),
                "run_id": result.run.pk if result.run else None,
            }
        )

    @op("stop", request=shapes.AttemptStopRequest, response=shapes.AttemptStopResponse)
    def stop(self, request):
        """Cancel the reply being generated (by chat_id or group_id); the partial text is kept."""
        data = self.parse()
        result = messaging.attempt_stop(
            actor=self.actor, chat_id=data.get("chat_id"), group_id=data.get("group_id")
        )
        return Response(
            {"chat_id": result.chat_id, "success": result.success, "message": result.message}
        )

    @op("next", request=shapes.AttemptNextRequest, response=shapes.AttemptNextResponse)
    def next_chat(self, request):
        """Open the next scenario's chat (the current one must be ended)."""
        data = self.parse()
        chat = lifecycle.attempt_next(actor=self.actor, attempt_id=data["attempt_id"])
        return Response({"attempt_id": chat.attempt_id, "chat_id": chat.pk})

    @op("end", request=shapes.AttemptEndRequest, response=shapes.AttemptEndResponse)
    def end(self, request):
        """End a chat; grade: true asks the AI, or an agent passes score and entries."""
        data = self.parse()
        result = lifecycle.attempt_end(
            actor=self.actor,
            attempt_id=data["attempt_id"],
            chat_id=data["chat_id"],
            grade=data.get("grade", False),
            given=_given_grade(data),
            session=self.session,
        )
        grade = result.grade
        hidden = grade is not None and selectors.score_withheld(
            actor=self.actor, attempt_id=result.chat.attempt_id, chat_id=result.chat.pk
        )
        return Response(
            {
                "chat_id": result.chat.pk,
                "is_attempt_finished": result.is_attempt_finished,
                "grade_id": grade.pk if grade else None,
                "score": grade.score if grade and not hidden else None,
                "passed": grade.passed if grade and not hidden else None,
                "awaiting_review": hidden,
            }
        )

    @op("end-all", request=shapes.AttemptEndAllRequest, response=shapes.AttemptEndAllResponse)
    def end_all(self, request):
        """End every chat still open or pending."""
        data = self.parse()
        result = lifecycle.attempt_end_all(actor=self.actor, attempt_id=data["attempt_id"])
        return Response(
            {
                "attempt_id": result.attempt.pk,
                "success": True,
                "all_scenarios_complete": result.all_scenarios_complete,
                "message": f"Ended {result.ended_count} chat(s).",
            }
        )

    @op("grade", request=shapes.AttemptGradeRequest, response=shapes.AttemptGradeResponse)
    def grade(self, request):
        """Grade an ended chat again (default: the current chat)."""
        data = self.parse()
        chat, grade = grading.attempt_grade(
            actor=self.actor,
            attempt_id=data["attempt_id"],
            chat_id=data.get("chat_id"),
            resource_types=data.get("resource_types"),
            user_instructions=data.get("user_instructions"),
            given=_given_grade(data),
            session=self.session,
        )
        hidden = selectors.score_withheld(
            actor=self.actor, attempt_id=data["attempt_id"], chat_id=chat.pk
        )
        return Response(
            {
                "chat_id": chat.pk,
                "grade_id": grade.pk,
                "score": None if hidden else grade.score,
                "passed": None if hidden else grade.passed,
                "awaiting_review": hidden,
            }
        )

    @op("complete", request=shapes.AttemptCompleteRequest, response=shapes.AttemptCompleteResponse)
    def complete(self, request):
        """Freeze the attempt and roll its rubric up; calling again answers the same completion."""
        data = self.parse()
        completion = lifecycle.attempt_complete(
            actor=self.actor,
            attempt_id=data["attempt_id"],
            message=data.get("message") or "",
            session=self.session,
        )
        hidden = selectors.score_withheld(actor=self.actor, attempt_id=completion.attempt_id)
        return Response(
            {
                "attempt_id": completion.attempt_id,
                "completion_id": completion.pk,
                "score": None if hidden else completion.score,
                "passed": None if hidden else completion.passed,
                "groups": [] if hidden else completion.groups,
                "message": completion.message,
                "awaiting_review": hidden,
            }
        )

    @op(
        "use-previous",
        request=shapes.AttemptUsePreviousRequest,
        response=shapes.AttemptUsePreviousResponse,
    )
    def use_previous(self, request):
        """Copy grades chat by chat from the learner's earlier attempt at the same simulation."""
        data = self.parse()
        count = grading.attempt_use_previous(
            actor=self.actor,
            attempt_id=data["attempt_id"],
            previous_chat_map=data["previous_chat_map"],
        )
        return Response({"success": True, "message": f"Copied {count} grade(s)."})

    @op("response", request=shapes.AttemptResponseRequest, response=shapes.AttemptResponseResponse)
    def respond(self, request):
        """Answer a video scenario's question."""
        data = self.parse()
        answer = lifecycle.attempt_respond(
            actor=self.actor,
            chat_id=data["chat_id"],
            question_id=data["question_id"],
            option_ids=data["option_ids"],
        )
        return Response(
            {
                "success": True,
                "message": "Correct." if answer.is_correct else "Not quite.",
                "is_correct": answer.is_correct,
                "response_id": answer.pk,
            }
        )

    @op("group", request=shapes.AttemptGroupRequest, response=shapes.AttemptGroupResponse)
    def group(self, request):
        """Resolve (or mint) the group an attempt streams on: the attempt's own group, in
        whichever session it was started, not the universal op's per-session one."""
        data = self.parse()
        attempt = lifecycle.attempt_group(
            actor=self.actor,
            attempt_id=data.get("attempt_id"),
            group_id=data.get("group_id"),
            session=self.session,
        )
        group = attempt.group
        return Response(
            {
                "group_id": group.pk,
                "session_id": group.session_id,
                "group_name": group.name,
                "name": group.name,
                "family": group.family,
                "artifact_id": group.artifact_id,
                "attempt_id": attempt.pk,
                "created_at": group.created_at,
                "run_count": group.run_count,
            }
        )

    @op("export", request=export_request, response=shapes.AttemptExportResponse)
    def export(self, request):
        """A ZIP of transcripts, grades and rubric scores; download it with file/download."""
        result = exports.attempts_export(
            actor=self.actor, params=self.parse(), session=self.session
        )
        return Response(export_body(result.upload, message_count=result.message_count))

    # -- human review -----------------------------------------------------------------------------

    @op(
        "review",
        request=shapes.AttemptReviewRequest,
        response=shapes.AttemptReviewResponse,
        roles=STAFF,
    )
    def review(self, request):
        """Grade chat criteria by hand (score + comment); the judge's grade is kept beside it and
        the attempt's rollup, feedback and exports use the human grade from now on. Audited."""
        data = self.parse()
        result = reviews.attempt_review(
            actor=self.actor,
            attempt_id=data["attempt_id"],
            chat_id=data["chat_id"],
            criteria=data["criteria"],
            session=self.session,
        )
        attempt = result.chat.attempt
        attempt.refresh_from_db(fields=["score", "passed"])
        grade = result.grade
        return Response(
            {
                "attempt_id": attempt.pk,
                "chat_id": result.chat.pk,
                "grade_id": grade.pk if grade else None,
                "ai_grade_id": grade.based_on_id if grade else None,
                "chat_score": grade.score if grade else None,
                "attempt_score": attempt.score,
                "attempt_passed": attempt.passed,
                "reviews": shapes.CriterionReviewOut(result.reviews, many=True).data,
            }
        )

    @op(
        "annotate",
        request=shapes.AttemptAnnotateRequest,
        response=shapes.AttemptAnnotateResponse,
        roles=STAFF,
    )
    def annotate(self, request):
        """Comment on one turn: visibility learner (shown beside that turn on the learner's
        results) or staff. Audited."""
        data = self.parse()
        comment = reviews.attempt_annotate(
            actor=self.actor,
            attempt_id=data["attempt_id"],
            message_id=data["message_id"],
            body=data["body"],
            visibility=data["visibility"],
            session=self.session,
        )
        return Response(
            {
                "comment_id": comment.pk,
                "attempt_id": comment.attempt_id,
                "chat_id": comment.chat_id,
                "message_id": comment.message_id,
                "body": comment.body,
                "visibility": comment.visibility,
                "author_name": self.actor.name,
                "created_at": comment.created_at,
            }
        )

    # -- audio sessions -------------------------------------------------------------------------

    @op(
        "audio/start",
        request=shapes.AttemptAudioChatRequest,
        response=shapes.AttemptAudioStartResponse,
    )
    def audio_start(self, request):
        """Open the chat's audio session (or answer the open one); events stream on group_id."""
        data = self.parse()
        opened = audio.audio_session_start(
            actor=self.actor, chat_id=data["chat_id"], session=self.session
        )
        return Response(
            {
                "chat_id": opened.chat_id,
                "run_id": opened.run_id,
                "group_id": opened.group_id,
                "attempt_id": opened.attempt_id,
                "audio_session_id": opened.pk,
                "status": opened.status,
                "started_at": opened.started_at,
                "frames_received": opened.frames_received,
            }
        )

    @op(
        "audio/frame",
        request=shapes.AttemptAudioFrameRequest,
        response=shapes.AttemptAudioFrameResponse,
    )
    def audio_frame(self, request):
        """Queue an uploaded recording: it is transcribed into the learner's message and answered
        as text and speech (AudioTranscriptEvent, ChatMessageEvent, AudioReplyEvent)."""
        data = self.parse()
        queued = audio.audio_frame_push(
            actor=self.actor, chat_id=data["chat_id"], upload_id=data["upload_id"]
        )
        return Response(
            {
                "accepted": True,
                "audio_session_id": queued.pk,
                "frames_received": queued.frames_received,
            }
        )

    @op(
        "audio/stop",
        request=shapes.AttemptAudioChatRequest,
        response=shapes.AttemptAudioStopResponse,
    )
    def audio_stop(self, request):
        """Close the chat's audio session; later frames are refused."""
        data = self.parse()
        stopped = audio.audio_session_stop(actor=self.actor, chat_id=data["chat_id"])
        return Response(
            {
                "chat_id": data["chat_id"],
                "stopped": stopped is not None,
                "audio_session_id": stopped.pk if stopped else None,
                "frames_received": stopped.frames_received if stopped else None,
            }
        )
