"""Parameter sets in a test grid: the agent's calls carry the cell's set, else the agent's own."""

from __future__ import annotations

import pytest

from glow.ai import CompletionRequest
from glow.ai.local import LocalProvider
from glow.catalog.tests.factories import AIModelFactory, ParameterSetFactory
from tests.support.fakeserver import FakeOpenAIServer
from tests_app.engine import workers

pytestmark = pytest.mark.django_db

SENT = ("temperature", "top_p", "max_tokens", "seed")


def agent_bodies(server) -> list[dict]:
    """What the agent's turns sent (persona and grader calls stay on the local simulator)."""
    return [request.body for request in server.requests if request.path.endswith("completions")]


def sent(body: dict) -> dict:
    return {name: body[name] for name in SENT if name in body}


def remote(catalog, server):
    return AIModelFactory(
        organization=catalog.organization,
        provider="openai",
        base_url=server.base_url,
        provider_model="echo",
    )


def test_the_cells_parameter_set_reaches_the_openai_compatible_server(staff, catalog):
    organization = catalog.organization
    agents_own = ParameterSetFactory(organization=organization, temperature=0.9, seed=None)
    cells = ParameterSetFactory(
        organization=organization, temperature=0.0, top_p=0.5, max_tokens=300, seed=11
    )
    agent = catalog.agents[0]
    agent.parameter_set = agents_own
    agent.save()
    with FakeOpenAIServer() as server:
        model = remote(catalog, server)
        named = catalog.start_queued(staff, model_ids=[model.pk], parameter_id=cells.pk, repeats=2)
        assert workers.worker_run(test_id=named.pk, worker_token="a") == 4
        by_cell = [sent(body) for body in agent_bodies(server)]

        unnamed = catalog.start_queued(staff, model_ids=[model.pk])
        assert workers.worker_run(test_id=unnamed.pk, worker_token="b") == 2
        by_agent = [sent(body) for body in agent_bodies(server)[len(by_cell) :]]

    # Repeat r of a cell offsets the set's seed by r, so repeats still differ.
    assert sorted(by_cell, key=lambda body: body["seed"]) == [
        {"temperature": 0.0, "top_p": 0.5, "max_tokens": 300, "seed": 11},
        {"temperature": 0.0, "top_p": 0.5, "max_tokens": 300, "seed": 11},
        {"temperature": 0.0, "top_p": 0.5, "max_tokens": 300, "seed": 12},
        {"temperature": 0.0, "top_p": 0.5, "max_tokens": 300, "seed": 12},
    ]
    # No cell set: the agent's own (its empty entries are left to the server, not sent).
    assert by_agent == [{"temperature": 0.9, "top_p": 0.9, "max_tokens": 400}] * 2


def test_without_any_parameter_set_nothing_is_sent(staff, catalog):
    with FakeOpenAIServer() as server:
        test = catalog.start_queued(staff, model_ids=[remote(catalog, server).pk])
        assert workers.worker_run(test_id=test.pk, worker_token="a") == 2
        assert [sent(body) for body in agent_bodies(server)] == [{}, {}]


def test_the_local_simulator_answers_by_seed():
    provider = LocalProvider()
    context = {
        "agent": {"title": "TA", "system_prompt": "Be kind.", "tools": []},
        "transcript": [{"role": "assistant", "content": "I'm lost on recursion."}],
        "scenario": {"title": "Recursion", "context": "Office hours."},
        "persona": {"name": "Casey", "traits": ["confused"]},
    }

    def answer(seed):
        request = CompletionRequest(messages=[], task="agent_turn", context=context, seed=seed)
        return provider.complete(request).text

    assert answer(3) == answer(3)
    assert len({answer(seed) for seed in range(8)}) > 1
