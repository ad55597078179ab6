"""Demo: one small completed test (1 model x 2 scenarios x 2 agents) so the benchmark has data.

The two agents differ only in their instructions, so the grid shows what instructions do.
"""

from __future__ import annotations

import uuid

from glow.accounts.models import Organization, Profile
from glow.catalog import models as m
from glow.catalog.demo import find
from system.ledger import session_touch
from tests_app import lifecycle
from tests_app.engine import workers
from tests_app.models import Test

TITLE = "Demo benchmark: office hours"
SCENARIOS = ("Office hours: recursion confusion", "Office hours: midterm regrade dispute")
MODELS = ("Glow local simulator",)
AGENTS = ("Office-hours coach", "Terse TA")
PARAMETERS = "Deterministic (seed 7)"  # every cell's, over each agent's own


def seed(*, stdout) -> None:
    demo = Organization.objects.get(name="Demo University")
    if Test.objects.filter(organization=demo, title=TITLE).exists():
        stdout.write(f"  tests: {TITLE} already there")
        return
    admin = Profile.objects.get(user__username="admin")
    # Found by the ids the catalog demo gave them: they may have been renamed since.
    evaluation = find(m.Eval, demo, "Office-hours eval")
    models = [find(m.AIModel, demo, title) for title in MODELS]
    scenarios = [find(m.Scenario, demo, title) for title in SCENARIOS]
    agents = [find(m.Agent, demo, title) for title in AGENTS]
    parameters = find(m.ParameterSet, demo, PARAMETERS)
    if None in (evaluation, *agents, *models, *scenarios):
        stdout.write("  tests: a demo eval, model, scenario or agent was deleted; no test started")
        return
    session = session_touch(actor=admin, client_kind="api", auth="demo")
    test, _ = lifecycle.test_start(
        actor=admin,
        session=session,
        eval_id=evaluation.pk,
        model_ids=[row.pk for row in models],
        scenario_ids=[row.pk for row in scenarios],
        agent_ids=[agent.pk for agent in agents],
        parameter_id=parameters.pk if parameters else None,
        title=TITLE,
        concurrency=1,
        secrets=[{"label": "Demo course API token", "value": "demo-token-for-decrypt"}],
        dispatch=False,
    )
    # Run here rather than on a worker: the demo must end with a finished, graded grid.
    workers.worker_run(test_id=test.pk, worker_token=uuid.uuid4().hex)
    lifecycle.test_complete(actor=admin, session=session, test_id=test.pk, message="Demo data.")
    stdout.write(f"  tests: {TITLE} with {test.invocations.count()} graded invocations")
