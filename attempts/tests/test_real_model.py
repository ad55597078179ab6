"""A real model through the real API: llama-cpp-python's server with the packaged SmolLM2-135M.

Selected with `-m llm` (in `make test-services`, which installs the `llm` extra). One persona
reply (streamed), one hint and one grade (structured output, negotiated with a server that
refuses `json_schema`) and one generate, each a Run with the tokens the server counted.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from attempts.models import Message
from glow.ai import Usage, cost_for, negotiation
from glow.ai.llama import GLOW_MODEL_TITLE, MODEL_NAME, LlamaServer, server_available
from glow.catalog.models import Persona
from glow.catalog.services import model_configure
from system.models import Event, Run, RunStatus

pytestmark = [pytest.mark.services, pytest.mark.llm, pytest.mark.django_db]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    if not server_available():
        pytest.skip("Needs the llm extra (make install-llm).")
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with LlamaServer(log_path=log) as server:
        print(f"\nllama.cpp server ready in {server.started_in:.1f} s on {server.base_url}")
        yield server


@pytest.fixture
def smollm(llama, demo, settings):
    """Every call that names no model goes to SmolLM2, negotiating structured output."""
    negotiation.forget_all()
    settings.GLOW_AI_MODEL = GLOW_MODEL_TITLE
    # Grammar-constrained sampling is slow in llama-cpp-python on two shared cores.
    settings.GLOW_OPENAI_TIMEOUT = 600.0
    model_configure(
        title=GLOW_MODEL_TITLE,
        base_url=llama.base_url,
        provider_model=MODEL_NAME,
        input_price_per_million=Decimal("0.10"),
        output_price_per_million=Decimal("0.40"),
    )
    yield llama
    negotiation.forget_all()


def _ok(response):
    assert response.status_code == 200, response.content
    return response.json()


def _booked(run: Run) -> Run:
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.provider == "openai" and run.provider_model == MODEL_NAME
    assert run.model.title == GLOW_MODEL_TITLE
    assert run.input_tokens > 0 and run.output_tokens > 0
    assert run.total_tokens == run.input_tokens + run.output_tokens
    assert run.cost == cost_for(
        Usage(run.input_tokens, run.output_tokens),
        input_price_per_million=Decimal("0.10"),
        output_price_per_million=Decimal("0.40"),
    )
    assert run.cost > 0
    return run


def test_a_turn_a_hint_a_grade_and_a_generate_on_a_real_model(smollm, demo, make_client):
    client = make_client(demo.learner1)
    started = _ok(client.op("attempt/start", {"home_id": str(demo.home.pk)}))
    chat_id = started["chat_ids"][0]

    began = time.perf_counter()
    said = _ok(
        client.op(
            "attempt/message",
            {
                "attempt_id": started["attempt_id"],
                "chat_id": chat_id,
                "message": "Hi, thanks for coming to office hours. What would you like to "
                "talk about today?",
            },
        )
    )
    turn_seconds = time.perf_counter() - began

    reply = Message.objects.get(pk=said["assistant_message_id"])
    persona_run = _booked(Run.objects.get(kind="persona_reply"))
    assert said["assistant_content"] == reply.content and reply.content.strip()
    assert reply.run_id == persona_run.pk
    assert persona_run.output == reply.content
    # Streamed: the deltas went out on the attempt's channel as they came.
    assert Event.objects.filter(run=persona_run, event_type="ChatMessageEvent").exists()
    hint_run = _booked(Run.objects.get(kind="hint"))
    assert said["hints"], "a hint or an explicit hint error, never nothing"
    assert all(hint["type"] in {"warning", "praise", "suggestion"} for hint in said["hints"])
    assert all(hint["content"].strip() for hint in said["hints"])
    # llama-cpp-python refused json_schema once; json_object with the schema is remembered.
    assert (
        negotiation.remembered(f"{smollm.base_url}/", MODEL_NAME)
        is negotiation.Mode.JSON_OBJECT_SCHEMA
    )

    began = time.perf_counter()
    ended = _ok(
        client.op(
            "attempt/end", {"attempt_id": started["attempt_id"], "chat_id": chat_id, "grade": True}
        )
    )
    grade_seconds = time.perf_counter() - began
    grade_run = _booked(Run.objects.get(kind="grade"))
    assert ended["grade_id"] and 0 <= ended["score"] <= 100
    assert grade_run.output.lstrip().startswith("{")

    admin = make_client(demo.instructor)
    began = time.perf_counter()
    generated = _ok(
        admin.op(
            "persona/generate",
            {"instructions": ["A first-year student worried about failing, intensity 6"]},
        )
    )
    generate_seconds = time.perf_counter() - began
    generate_run = _booked(Run.objects.get(pk=generated["run_id"]))
    assert Persona.objects.filter(pk=generate_run.artifact_id).exists()

    print(
        f"\nSmolLM2-135M: turn (reply + hint) {turn_seconds:.1f} s "
        f"[reply {persona_run.latency_ms / 1000:.1f} s, hint {hint_run.latency_ms / 1000:.1f} s], "
        f"grade {grade_seconds:.1f} s, generate {generate_seconds:.1f} s"
        f"\npersona: {reply.content}\nhints: {said['hints']}\ngrade: {ended['score']}%"
    )
