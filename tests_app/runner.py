"""Runs a test's invocations: claim one within the concurrency limit, converse, record tools, grade.

Every model call is a system.Run in the test's group (through system.services.model_call). Each
invocation also has an envelope Run (kind "invocation") whose events are its lifecycle on the
group's SSE channel. Whoever halts an invocation (stop, terminate, complete) finishes that
envelope; the runner only notices the status change and stops writing.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from glow.ai import CompletionRequest, ProviderError
from glow.catalog.models import Rubric, Tool
from system import events
from system.models import Run, RunStatus
from system.services import model_call, run_create, run_finish, run_mark_running
from tests_app.models import (
    GradeSource,
    Invocation,
    InvocationStatus,
    Test,
    TestGrade,
    TestStatus,
    ToolCall,
)
from tests_app.selectors import test_progress

logger = logging.getLogger(__name__)

TOOL_CALL_EVENT = "InvocationToolCallEvent"
TEST_PROGRESS_EVENT = "TestProgressEvent"

GRADE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "groups": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"group_id": {"type": "string"}, "score": {"type": "number"}},
                "required": ["group_id", "score"],
            },
        },
        "feedback": {"type": "string"},
    },
    "required": ["score", "groups", "feedback"],
}


def worker_run(*, test_id: Any, worker_token: str) -> int:
    """One worker slot: resume what this token had claimed (a redelivered task), then drain the queue."""
    executed = 0
    resumed = list(
        Invocation.objects.filter(
            test_id=test_id, status=InvocationStatus.RUNNING, worker_token=worker_token
        ).values_list("pk", flat=True)
    )
    for invocation_id in resumed:
        invocation_execute(invocation_id=invocation_id)
        executed += 1
    while (
        invocation_id := invocation_claim(test_id=test_id, worker_token=worker_token)
    ) is not None:
        invocation_execute(invocation_id=invocation_id)
        executed += 1
    return executed


@transaction.atomic
def invocation_claim(*, test_id: Any, worker_token: str):
    """The next queued invocation, marked running, if the test has a free slot; else None.

    The test row lock serialises claims, so the running count never exceeds the limit; the
    conditional UPDATE is what makes a claim exclusive on SQLite too (no row locks there).
    """
    test = (
        Test.objects.select_for_update()
        .filter(pk=test_id)
        .values_list("status", "concurrency")
        .first()
    )
    if test is None or test[0] != TestStatus.RUNNING:
        return None
    concurrency = test[1]
    running = Invocation.objects.filter(test_id=test_id, status=InvocationStatus.RUNNING).count()
    if running >= concurrency:
        return None
    queued = Invocation.objects.filter(test_id=test_id, status=InvocationStatus.QUEUED)
    if connection.features.has_select_for_update_skip_locked:
        queued = queued.select_for_update(skip_locked=True)
    for candidate in queued.order_by("position").values_list("pk", flat=True)[:3]:
        claimed = Invocation.objects.filter(pk=candidate, status=InvocationStatus.QUEUED).update(
            status=InvocationStatus.RUNNING,
            worker_token=worker_token,
            started_at=timezone.now(),
            finished_at=None,
            error="",
        )
        if claimed:
            return candidate
    return None


def invocation_execute(*, invocation_id: Any) -> str:
    """Run one claimed invocation to its end; answers its final status. Safe to run twice."""
    invocation = (
        Invocation.objects.select_related(
            "test__eval", "test__group", "model", "scenario__persona", "agent"
        )
        .filter(pk=invocation_id)
        .first()
    )
    if invocation is None or invocation.status != InvocationStatus.RUNNING:
        return invocation.status if invocation else ""
    if invocation.test.group is None:
        return _fail(invocation, None, "The test's group no longer exists.")
    envelope = _begin(invocation)
    conversation = Conversation(invocation, envelope)
    try:
        if not conversation.run() or not conversation.grade():
            return InvocationStatus.TERMINATED
    except ProviderError as exc:
        return _fail(invocation, envelope, str(exc))
    except Exception as exc:  # a worker must survive one bad cell and go on with the next
        logger.exception("Invocation %s failed", invocation.pk)
        return _fail(invocation, envelope, f"{type(exc).__name__}: {exc}")
    return _succeed(invocation, envelope, conversation)


@transaction.atomic
def _begin(invocation: Invocation) -> Run:
    """A fresh start: earlier tool calls, grade and transcript go (a re-run replaces them)."""
    if invocation.run_id:
        previous = Run.objects.filter(pk=invocation.run_id).first()
        if previous is not None:
            run_finish(run=previous, status=RunStatus.FAILED, error="Superseded by a new run.")
    ToolCall.objects.filter(invocation=invocation).delete()
    TestGrade.objects.filter(invocation=invocation).delete()
    envelope = run_create(
        group=invocation.test.group,
        kind="invocation",
        model=invocation.model,
        family="test",
        artifact_id=invocation.pk,
        params={
            "test_id": str(invocation.test_id),
            "invocation_id": str(invocation.pk),
            "scenario_id": str(invocation.scenario_id),
            "agent_id": str(invocation.agent_id),
        },
    )
    run_mark_running(run=envelope)
    Invocation.objects.filter(pk=invocation.pk).update(
        run_id=envelope.pk,
        transcript=[],
        input_tokens=0,
        output_tokens=0,
        total_tokens=0,
        cost=Decimal("0"),
        error="",
    )
    invocation.run_id = envelope.pk
    events.event_emit(
        run=envelope,
        event_type=events.PROGRESS,
        payload={
            **_ids(invocation),
            "completed_resources": 0,
            "total_resources": invocation.test.eval.turns + 1,
            "percentage": 0,
            "last_completed_resource": None,
        },
    )
    return envelope


def _ids(invocation: Invocation) -> dict:
    return {"test_id": str(invocation.test_id), "invocation_id": str(invocation.pk)}


class Conversation:
    """The agent (on the cell's model) and the scenario's persona, for the eval's number of turns.

    Transcript roles are "agent" and "persona". The local simulator reads the attempt
    convention ("user" is the teaching assistant, here the agent; "assistant" the student).
    The invocation's tokens and cost are the agent's calls on the model under test; persona
    and grader calls are counted in the test's group like every run.
    """

    def __init__(self, invocation: Invocation, envelope: Run) -> None:
        self.invocation = invocation
        self.envelope = envelope
        self.test = invocation.test
        self.turns = self.test.eval.turns
        self.transcript: list[dict] = []
        self.tools = list(Tool.objects.filter(agents=invocation.agent).order_by("name"))
        self.tool_position = 0
        self.input_tokens = self.output_tokens = 0
        self.cost = Decimal("0")
        self.score: Decimal | None = None
        self.total_points = 0

    # -- shapes the providers read ------------------------------------------------------------

    def _persona(self) -> dict:
        persona = self.invocation.scenario.persona
        return {
            "name": persona.title.split(",")[0],
            "traits": persona.traits,
            "description": persona.description,
            "intensity": persona.intensity,
            "voice": persona.voice,
        }

    def _scenario(self) -> dict:
        scenario = self.invocation.scenario
        return {"title": scenario.title, "context": scenario.context}

    def _simulator_transcript(self, *, with_ids: bool = False) -> list[dict]:
        turns = []
        for index, message in enumerate(self.transcript):
            entry = {
                "role": "user" if message["role"] == "agent" else "assistant",
                "content": message["content"],
            }
            if with_ids:
                entry["id"] = str(index)
            turns.append(entry)
        return turns

    def _chat(self, *, speaker: str) -> list[dict]:
        """OpenAI-style messages from `speaker`'s side: its own lines are "assistant"."""
        return [
            {
                "role": "assistant" if message["role"] == speaker else "user",
                "content": message["content"],
            }
            for message in self.transcript
        ]

    def _agent_system(self) -> str:
        agent = self.invocation.agent
        lines = [agent.system_prompt or f"You are {agent.title}."]
        if self.tools:
            lines.append("Tools you may call:")
            lines.extend(f"- {tool.name}: {tool.description or tool.title}" for tool in self.tools)
        lines.append(f"Situation: {self.invocation.scenario.context}")
        return "\n".join(lines)

    # -- the conversation ---------------------------------------------------------------------

    def run(self) -> bool:
        """False when the invocation was halted meanwhile."""
        for turn in range(1, self.turns + 1):
            if not self._agent_turn(turn) or not self._persona_turn(turn):
                return False
            events.event_emit(
                run=self.envelope,
                event_type=events.PROGRESS,
                payload={
                    **_ids(self.invocation),
                    "completed_resources": turn,
                    "total_resources": self.turns + 1,
                    "percentage": round(turn * 100 / (self.turns + 1)),
                    "last_completed_resource": f"turn {turn}",
                },
            )
        return True

    def _call(self, *, kind: str, model, request: CompletionRequest):
        run = run_create(
            group=self.test.group,
            kind=kind,
            model=model,
            family="test",
            artifact_id=self.invocation.pk,
        )
        result = model_call(run=run, request=request)
        return run, result

    def _agent_turn(self, turn: int) -> bool:
        agent = self.invocation.agent
        request = CompletionRequest(
            messages=[
                {"role": "system", "content": self._agent_system()},
                *self._chat(speaker="agent"),
            ],
            model=self.invocation.model.provider_model,
            task="agent_turn",
            context={
                "agent": {
                    "title": agent.title,
                    "system_prompt": agent.system_prompt,
                    "tools": [
                        {"name": tool.name, "schema": tool.json_schema, "description": tool.title}
                        for tool in self.tools
                    ],
                },
                "transcript": self._simulator_transcript(),
                "scenario": self._scenario(),
                "persona": self._persona(),
            },
        )
        run, result = self._call(kind="agent_turn", model=self.invocation.model, request=request)
        self.input_tokens += run.input_tokens
        self.output_tokens += run.output_tokens
        self.cost += run.cost
        calls = (result.data or {}).get("tool_calls") if isinstance(result.data, dict) else None
        tool_calls = self._record_tools(turn, calls or [], run)
        self.transcript.append(
            {
                "role": "agent",
                "content": result.text,
                "turn": turn,
                "run_id": str(run.pk),
                "tool_call_ids": [str(call.pk) for call in tool_calls],
                "created_at": timezone.now().isoformat(),
            }
        )
        return self._save()

    def _record_tools(self, turn: int, calls: list, run: Run) -> list[ToolCall]:
        """Tools are declared in the catalog as schemas only: the call is recorded, not executed."""
        by_name = {tool.name: tool for tool in self.tools}
        rows = []
        for call in calls:
            if not isinstance(call, dict):
                continue
            name = str(call.get("name") or "")[:100]
            tool = by_name.get(name)
            result = (
                {"simulated": True, "content": tool.description or tool.title}
                if tool is not None
                else {"error": f"The agent has no tool named {name!r}."}
            )
            arguments = call.get("arguments")
            rows.append(
                ToolCall(
                    invocation=self.invocation,
                    position=self.tool_position,
                    turn=turn,
                    name=name,
                    arguments=arguments if isinstance(arguments, dict) else {"value": arguments},
                    result=result,
                    run=run,
                )
            )
            self.tool_position += 1
        ToolCall.objects.bulk_create(rows)
        for row in rows:
            events.event_emit(
                run=self.envelope,
                event_type=TOOL_CALL_EVENT,
                payload={
                    **_ids(self.invocation),
                    "tool_call_id": str(row.pk),
                    "name": row.name,
                    "turn": turn,
                },
            )
        return rows

    def _persona_turn(self, turn: int) -> bool:
        agent_line = self.transcript[-1]["content"]
        persona = self.invocation.scenario.persona
        request = CompletionRequest(
            messages=[
                {
                    "role": "system",
                    "content": f"You are {persona.title}, a student. {persona.description}\n"
                    f"Situation: {self.invocation.scenario.context}",
                },
                *self._chat(speaker="persona"),
            ],
            task="persona_reply",
            context={
                "persona": self._persona(),
                "scenario": self._scenario(),
                "transcript": self._simulator_transcript()[:-1],
                "learner_message": agent_line,
            },
        )
        run, result = self._call(kind="persona_reply", model=None, request=request)
        self.transcript.append(
            {
                "role": "persona",
                "content": result.text,
                "turn": turn,
                "run_id": str(run.pk),
                "tool_call_ids": [],
                "created_at": timezone.now().isoformat(),
            }
        )
        return self._save()

    def _save(self) -> bool:
        """Persist progress while still running: zero rows updated means someone halted it."""
        return bool(
            Invocation.objects.filter(
                pk=self.invocation.pk, status=InvocationStatus.RUNNING
            ).update(
                transcript=self.transcript,
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
                total_tokens=self.input_tokens + self.output_tokens,
                cost=self.cost,
            )
        )

    # -- grading --------------------------------------------------------------------------------

    def grade(self) -> bool:
        """The eval's rubric grades the agent's lines; the grade's groups feed the benchmark."""
        rubric = Rubric.objects.prefetch_related("groups__standards").get(
            pk=self.test.eval.rubric_id
        )
        structure = rubric.structure()
        transcript_text = "\n".join(
            f"{message['role']}: {message['content']}" for message in self.transcript
        )
        request = CompletionRequest(
            messages=[
                {
                    "role": "system",
                    "content": "Grade the agent's messages against the rubric. Answer JSON with "
                    "score, groups [{group_id, score}] and feedback.",
                },
                {
                    "role": "user",
                    "content": f"Rubric: {structure}\n\nTranscript:\n{transcript_text}",
                },
            ],
            task="grade",
            context={
                "rubric": {"title": rubric.title, "groups": structure},
                "transcript": self._simulator_transcript(with_ids=True),
                "pass_threshold": (self.test.eval.settings or {}).get("pass_threshold", 70),
            },
            json_schema=GRADE_SCHEMA,
        )
        _run, result = self._call(kind="grade", model=None, request=request)
        data = result.data if isinstance(result.data, dict) else {}
        answered = {
            str(item.get("group_id")): item.get("score")
            for item in data.get("groups") or []
            if isinstance(item, dict)
        }
        groups = []
        for group in structure:
            raw = answered.get(group["id"])
            score = _clamp(raw if isinstance(raw, int | float) else 0, group["total_points"])
            groups.append(
                {
                    "standard_group_id": group["id"],
                    "name": group["name"],
                    "score": float(score),
                    "total_points": group["total_points"],
                }
            )
        self.total_points = sum(group["total_points"] for group in structure)
        self.score = sum((Decimal(str(group["score"])) for group in groups), Decimal("0"))
        with transaction.atomic():
            if not Invocation.objects.filter(
                pk=self.invocation.pk, status=InvocationStatus.RUNNING
            ).exists():
                return False
            TestGrade.objects.update_or_create(
                invocation=self.invocation,
                defaults={
                    "organization_id": self.invocation.organization_id,
                    "score": self.score,
                    "total_points": self.total_points,
                    "full": bool(self.total_points) and self.score == self.total_points,
                    "source": GradeSource.AUTO,
                    "groups": groups,
                    "feedback": str(data.get("feedback") or "")[:4000],
                    "graded_by": None,
                },
            )
        return True


def _clamp(value: float, ceiling: int) -> Decimal:
    return max(Decimal("0"), min(Decimal(ceiling), Decimal(str(round(float(value), 2)))))


def _succeed(invocation: Invocation, envelope: Run, conversation: Conversation) -> str:
    with transaction.atomic():
        finished = Invocation.objects.filter(
            pk=invocation.pk, status=InvocationStatus.RUNNING
        ).update(status=InvocationStatus.SUCCEEDED, finished_at=timezone.now())
        if not finished:
            return InvocationStatus.TERMINATED
        summary = f"{conversation.score}/{conversation.total_points}"
        run_finish(run=envelope, status=RunStatus.SUCCEEDED, output=summary)
        events.event_emit(
            run=envelope,
            event_type=events.SAVED,
            payload={**_ids(invocation), "artifact_id": str(invocation.pk)},
        )
        events.event_emit(
            run=envelope,
            event_type=events.COMPLETE,
            payload={
                **_ids(invocation),
                "success": True,
                "message": f"Invocation finished and graded {summary}.",
                "artifact_id": str(invocation.pk),
                "status": InvocationStatus.SUCCEEDED,
            },
        )
        _progress(invocation, envelope, InvocationStatus.SUCCEEDED)
    return InvocationStatus.SUCCEEDED


def _fail(invocation: Invocation, envelope: Run | None, message: str) -> str:
    with transaction.atomic():
        failed = Invocation.objects.filter(
            pk=invocation.pk, status=InvocationStatus.RUNNING
        ).update(status=InvocationStatus.FAILED, error=message[:4000], finished_at=timezone.now())
        if envelope is None:
            return InvocationStatus.FAILED if failed else InvocationStatus.TERMINATED
        run_finish(run=envelope, status=RunStatus.FAILED, error=message)
        if not failed:
            return InvocationStatus.TERMINATED
        events.event_emit(
            run=envelope,
            event_type=events.ERROR,
            payload={
                **_ids(invocation),
                "resource_type": "invocation",
                "resource_id": str(invocation.pk),
                "message": message,
                "status": InvocationStatus.FAILED,
            },
        )
        _progress(invocation, envelope, InvocationStatus.FAILED)
    return InvocationStatus.FAILED


def _progress(invocation: Invocation, envelope: Run, status: str) -> None:
    """After each invocation ends, the test's tally: a group watcher stops at finished: true."""
    events.event_emit(
        run=envelope,
        event_type=TEST_PROGRESS_EVENT,
        payload={**_ids(invocation), "status": status, **test_progress(test_id=invocation.test_id)},
    )
