"""Single invocations of an open test: create, run, terminate, complete."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from glow.core.errors import StateError
from tests_app.guards import _parameter_set, _scoped_rows, require_open, require_staff
from tests_app.keys import _key_ids
from tests_app.lifecycle import _halt, test_finish_if_done, workers_dispatch
from tests_app.models import (
    ACTIVE,
    Invocation,
    InvocationStatus,
    Test,
    TestStatus,
)
from tests_app.selectors import (
    invocation_access,
    test_access,
)


def _locked_open_test(test_id: Any) -> Test:
    test = Test.objects.select_for_update().get(pk=test_id)
    require_open(test)
    return test


def _reopen(test: Test) -> None:
    if test.status in (TestStatus.STOPPED, TestStatus.FINISHED):
        Test.objects.filter(pk=test.pk).update(status=TestStatus.RUNNING, updated_at=timezone.now())
        test.status = TestStatus.RUNNING


@transaction.atomic
def invocation_create(
    *,
    actor,
    test_id: Any,
    model_id: Any,
    scenario_id: Any,
    agent_id: Any,
    key_ids: list | None = None,
    secrets: list[dict] | None = None,
    parameter_id: Any = None,
) -> Invocation:
    """Add one cell to an open test and queue it (a stopped test runs again)."""
    require_staff(actor)
    test = test_access(actor=actor, pk=test_id, for_update=True)
    require_open(test)
    (model,) = _scoped_rows(actor=actor, family_name="model", ids=[model_id], field="model_id")
    (scenario,) = _scoped_rows(
        actor=actor, family_name="scenario", ids=[scenario_id], field="scenario_id"
    )
    (agent,) = _scoped_rows(actor=actor, family_name="agent", ids=[agent_id], field="agent_id")
    parameters = _parameter_set(actor=actor, parameter_id=parameter_id)
    keys = _key_ids(actor=actor, key_ids=key_ids, secrets=secrets)
    last = Invocation.objects.filter(test=test).aggregate(last=Max("position"))["last"]
    invocation = Invocation.objects.create(
        organization_id=actor.organization_id,
        created_by=actor,
        title=f"{model.title} · {scenario.title} · {agent.title}"[:300],
        test=test,
        model=model,
        scenario=scenario,
        agent=agent,
        parameter_set=parameters,
        position=0 if last is None else last + 1,
        key_ids=keys,
    )
    axes = {name: list(values) for name, values in (test.axes or {}).items()}
    for name, row in (("model_ids", model), ("scenario_ids", scenario), ("agent_ids", agent)):
        if str(row.pk) not in axes.setdefault(name, []):
            axes[name].append(str(row.pk))
    Test.objects.filter(pk=test.pk).update(axes=axes, updated_at=timezone.now())
    _reopen(test)
    workers_dispatch(test=test, queued=1)
    return invocation


@transaction.atomic
def invocation_run(*, actor, invocation_id: Any) -> Invocation:
    """Queue a finished invocation to run again from the start; an active one is left as it is."""
    require_staff(actor)
    invocation = invocation_access(actor=actor, pk=invocation_id, for_update=True)
    test = _locked_open_test(invocation.test_id)
    if invocation.status in ACTIVE:
        return invocation
    if invocation.status == InvocationStatus.COMPLETED:
        raise StateError("A completed invocation is final.", code="invocation_completed")
    Invocation.objects.filter(pk=invocation.pk).update(
        status=InvocationStatus.QUEUED,
        error="",
        worker_token="",
        started_at=None,
        finished_at=None,
        updated_at=timezone.now(),
    )
    _reopen(test)
    workers_dispatch(test=test, queued=1)
    invocation.refresh_from_db()
    return invocation


@transaction.atomic
def invocation_terminate(*, actor, invocation_id: Any) -> dict:
    require_staff(actor)
    invocation = invocation_access(actor=actor, pk=invocation_id, for_update=True)
    _locked_open_test(invocation.test_id)
    if invocation.status not in ACTIVE:
        return {
            "invocation_id": invocation.pk,
            "success": False,
            "message": f"Nothing to terminate: the invocation is {invocation.status}.",
            "status": invocation.status,
        }
    _halt(
        queryset=Invocation.objects.filter(pk=invocation.pk),
        reason=f"Terminated by {actor.name}.",
    )
    test_finish_if_done(test_id=invocation.test_id)
    return {
        "invocation_id": invocation.pk,
        "success": True,
        "message": "The invocation was terminated.",
        "status": InvocationStatus.TERMINATED,
    }


@transaction.atomic
def invocation_complete(*, actor, invocation_id: Any) -> Invocation:
    """Finalize one finished cell; completing it again answers the same row."""
    require_staff(actor)
    invocation = invocation_access(actor=actor, pk=invocation_id, for_update=True)
    if invocation.status == InvocationStatus.COMPLETED:
        return invocation
    _locked_open_test(invocation.test_id)
    if invocation.status in ACTIVE:
        raise StateError(
            f"The invocation is {invocation.status}: terminate it or let it finish first.",
            code="invocation_active",
        )
    Invocation.objects.filter(pk=invocation.pk).update(
        status=InvocationStatus.COMPLETED, updated_at=timezone.now(), version=F("version") + 1
    )
    invocation.refresh_from_db()
    return invocation
