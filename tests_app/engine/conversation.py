"""One cell's conversation: the agent's, the persona's and the grader's requests and what each answer adds."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from glow.ai import CompletionRequest
from glow.catalog.grading import GradeSource, grade_request, group_totals, standard_scores
from glow.catalog.models import Tool
from system.models import Run
from tests_app.engine.slots import TOOL_CALL_EVENT, _ids
from tests_app.models import (
    Invocation,
    ToolCall,
)


class Conversation:
    """The agent (on the cell's model) and the scenario's persona, for the eval's number of turns.

    Transcript roles are "agent" and "persona". The local simulator reads the attempt
    convention ("user" is the teaching assistant, here the agent; "assistant" the student).
    The invocation's tokens and cost are the agent's calls on the model under test; persona
    and grader calls are counted in the test's group like every run.
    """

    def __init__(self, invocation: Invocation, envelope: Run, tools: list | None = None) -> None:
        self.invocation = invocation
        self.envelope = envelope
        self.test = invocation.test
        self.turns = self.test.eval.turns
        self.transcript: list[dict] = []
        if tools is None:
            tools = list(Tool.objects.filter(agents=invocation.agent).order_by("name"))
        self.tools = tools
        self.tool_position = 0
        self.input_tokens = self.output_tokens = 0
        self.cost = Decimal("0")
        self.score: Decimal | None = None
        self.total_points = 0
        # The engine's bookkeeping of the cell.
        self.future = None
        self.envelope_saved = False
        self.halted = False
        self.ended = False
        self.grade_fields: dict | None = None
        self.error = ""

    # -- shapes the providers read ------------------------------------------------------------

    def _persona(self) -> dict:
        """The same persona material a learner's chat gives the simulator (attempts.prompts)."""
        persona = self.invocation.scenario.persona
        return {
            "name": persona.title.split(",")[0],
            "traits": persona.traits,
            "description": persona.description,
            "intensity": persona.intensity,
            "voice": persona.voice,
            "goal": persona.goal,
            "concerns": list(persona.concerns or []),
            "phrases": list(persona.phrases or []),
        }

    def _scenario(self) -> dict:
        scenario = self.invocation.scenario
        return {
            "title": scenario.title,
            "context": scenario.context,
            "persona_opens": scenario.persona_opens,
            "opening_line": scenario.opening_line,
            "learner_goal": scenario.learner_goal,
            "concerns": list(scenario.concerns or []),
        }

    def _seeded(self, context: dict) -> dict:
        """Repeats of a cell (test/start `repeats`) differ: the simulator hashes its context,
        so run r carries seed r (run 0 reads as an unrepeated cell)."""
        if self.invocation.seed:
            context["seed"] = self.invocation.seed
        return context

    def _parameters(self) -> dict:
        """The cell's parameter set, else its agent's, as CompletionRequest fields; a set seed
        is offset by the repeat so repeats of a cell still differ."""
        chosen = self.invocation.parameter_set or self.invocation.agent.parameter_set
        options = chosen.options() if chosen is not None else {}
        if "seed" in options:
            options["seed"] += self.invocation.seed
        return options

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

    def turn_progress(self, turn: int) -> dict:
        return {
            **_ids(self.invocation),
            "completed_resources": turn,
            "total_resources": self.turns + 1,
            "percentage": round(turn * 100 / (self.turns + 1)),
            "last_completed_resource": f"turn {turn}",
        }

    def agent_request(self) -> CompletionRequest:
        agent = self.invocation.agent
        return CompletionRequest(
            messages=[
                {"role": "system", "content": self._agent_system()},
                *self._chat(speaker="agent"),
            ],
            model=self.invocation.model.provider_model,
            **self._parameters(),
            task="agent_turn",
            context=self._seeded(
                {
                    "agent": {
                        "title": agent.title,
                        "system_prompt": agent.system_prompt,
                        "tools": [
                            {
                                "name": tool.name,
                                "schema": tool.json_schema,
                                "description": tool.title,
                            }
                            for tool in self.tools
                        ],
                    },
                    "transcript": self._simulator_transcript(),
                    "scenario": self._scenario(),
                    "persona": self._persona(),
                }
            ),
        )

    def agent_answered(self, turn: int, run: Run, result, tool_calls: list[ToolCall]) -> None:
        """The agent's line and usage (the invocation's own), once its tool calls are saved."""
        self.input_tokens += run.input_tokens
        self.output_tokens += run.output_tokens
        self.cost += run.cost
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

    def tool_rows(self, turn: int, result, run: Run) -> list[ToolCall]:
        """Tools are declared in the catalog as schemas only: the call is recorded, not executed."""
        calls = (result.data or {}).get("tool_calls") if isinstance(result.data, dict) else None
        by_name = {tool.name: tool for tool in self.tools}
        rows = []
        for call in calls or []:
            if not isinstance(call, dict):
                continue
            name = str(call.get("name") or "")[:100]
            tool = by_name.get(name)
            outcome = (
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
                    result=outcome,
                    run=run,
                )
            )
            self.tool_position += 1
        return rows

    def tool_events(self, turn: int, rows: list[ToolCall]) -> list[tuple[Run, str, dict]]:
        return [
            (
                self.envelope,
                TOOL_CALL_EVENT,
                {
                    **_ids(self.invocation),
                    "tool_call_id": str(row.pk),
                    "name": row.name,
                    "turn": turn,
                },
            )
            for row in rows
        ]

    def persona_request(self) -> CompletionRequest:
        agent_line = self.transcript[-1]["content"]
        persona = self.invocation.scenario.persona
        return CompletionRequest(
            messages=[
                {
                    "role": "system",
                    "content": f"You are {persona.title}, a student. {persona.description}\n"
                    f"Situation: {self.invocation.scenario.context}",
                },
                *self._chat(speaker="persona"),
            ],
            task="persona_reply",
            context=self._seeded(
                {
                    "persona": self._persona(),
                    "scenario": self._scenario(),
                    "transcript": self._simulator_transcript()[:-1],
                    "learner_message": agent_line,
                }
            ),
        )

    def persona_answered(self, turn: int, run: Run, result) -> None:
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

    def progress_fields(self) -> dict:
        """The invocation's fields as they stand (a copy: the cell goes on talking)."""
        return {
            "transcript": list(self.transcript),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost": self.cost,
        }

    # -- grading ------------------------------------------------------------------------------

    def grade_request(self, structure: list[dict]) -> CompletionRequest:
        """The shared rubric grader's request; no persona or scenario: the agent's moves alone."""
        return grade_request(
            subject="the agent",
            transcript=self._simulator_transcript(with_ids=True),
            structure=structure,
            pass_threshold=(self.test.eval.settings or {}).get("pass_threshold", 70),
        )

    def graded(self, result, structure: list[dict]) -> dict:
        """The grader's answer as the TestGrade's fields; sets score and total_points."""
        data = result.data if isinstance(result.data, dict) else {}
        answered = group_totals(standard_scores(data, structure))
        groups = []
        for group in structure:
            score = _clamp(answered.get(group["id"], [0])[0], group["total_points"])
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
        return {
            "organization_id": self.invocation.organization_id,
            "score": self.score,
            "total_points": self.total_points,
            "full": bool(self.total_points) and self.score == self.total_points,
            "source": GradeSource.AI,
            "groups": groups,
            "feedback": str(data.get("feedback") or "")[:4000],
            "graded_by": None,
        }


def _clamp(value: float, ceiling: int) -> Decimal:
    return max(Decimal("0"), min(Decimal(ceiling), Decimal(str(round(float(value), 2)))))
