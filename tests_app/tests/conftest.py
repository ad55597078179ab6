"""Fixtures of the tests app: a small catalog an instructor may benchmark, and API helpers."""

from __future__ import annotations

import pytest

from glow.accounts.tests.factories import DepartmentFactory
from glow.catalog.tests.factories import (
    AgentFactory,
    AIModelFactory,
    EvalFactory,
    RubricFactory,
    ScenarioFactory,
    ToolFactory,
)


class Catalog:
    """A one-turn eval with a two-group rubric, two local models (simulator, echo), two scenarios, one agent."""

    def __init__(self, organization, department) -> None:
        self.organization = organization
        self.department = department
        rubric = RubricFactory(organization=organization, department=department, groups=2)
        self.eval = EvalFactory(
            organization=organization, department=department, rubric=rubric, turns=1
        )
        self.rubric = rubric
        self.groups = list(rubric.groups.order_by("position"))
        self.models = [
            AIModelFactory(organization=organization, title="Simulator"),
            AIModelFactory(organization=organization, title="Echo", provider_model="echo"),
        ]
        self.scenarios = [
            ScenarioFactory(organization=organization, department=department, title=title)
            for title in ("Regrade dispute", "Late homework")
        ]
        tool = ToolFactory(
            organization=organization,
            name="lookup_policy",
            json_schema={
                "type": "object",
                "properties": {"topic": {"type": "string"}},
                "required": ["topic"],
            },
        )
        self.agents = [AgentFactory(organization=organization, department=department, tools=[tool])]

    def start_queued(self, actor, **overrides):
        """A started test whose invocations wait in the queue: no worker is dispatched."""
        from system.ledger import session_touch
        from tests_app import lifecycle

        arguments = {
            "eval_id": self.eval.pk,
            "model_ids": [row.pk for row in self.models],
            "scenario_ids": [row.pk for row in self.scenarios],
            "agent_ids": [row.pk for row in self.agents],
            **overrides,
        }
        test, _ = lifecycle.test_start(
            actor=actor,
            session=session_touch(actor=actor, client_kind="api", auth="api_key"),
            dispatch=False,
            **arguments,
        )
        return test

    def start_body(self, **overrides) -> dict:
        body = {
            "eval_id": str(self.eval.pk),
            "model_ids": [str(row.pk) for row in self.models],
            "scenario_ids": [str(row.pk) for row in self.scenarios],
            "agent_ids": [str(row.pk) for row in self.agents],
        }
        body.update(overrides)
        return body


@pytest.fixture
def department(org_admin):
    return DepartmentFactory(organization=org_admin.organization)


@pytest.fixture
def staff(instructor, department):
    """The instructor of the catalog's department."""
    instructor.departments.add(department)
    return instructor


@pytest.fixture
def catalog(org_admin, department):
    return Catalog(org_admin.organization, department)


@pytest.fixture
def staff_client(staff, make_client):
    return make_client(staff)
