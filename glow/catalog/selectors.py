"""Role scoping for the catalog: admins see the organization, instructors their departments,
learners what is assigned to their cohorts (and what that references)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from glow.catalog import models as m


def department_scope(queryset: QuerySet, actor) -> QuerySet:
    if actor.is_admin:
        return queryset
    if actor.is_instructor:
        return queryset.filter(
            Q(department__isnull=True) | Q(department_id__in=actor.department_ids())
        )
    return queryset.none()


def learner_homes(actor) -> QuerySet:
    return m.Home.objects.filter(
        organization_id=actor.organization_id, cohort_id__in=actor.cohort_ids()
    )


def learner_practices(actor) -> QuerySet:
    return m.Practice.objects.filter(organization_id=actor.organization_id).filter(
        Q(cohort_id__in=actor.cohort_ids())
        | Q(cohort__isnull=True, department_id__in=actor.department_ids())
        | Q(cohort__isnull=True, department__isnull=True)
    )


def learner_simulation_ids(actor) -> QuerySet:
    return m.Simulation.objects.filter(
        Q(id__in=learner_homes(actor).values("simulation_id"))
        | Q(id__in=learner_practices(actor).values("simulation_id"))
    ).values("id")


def learner_scenario_ids(actor) -> QuerySet:
    return m.SimulationScenario.objects.filter(
        simulation_id__in=learner_simulation_ids(actor)
    ).values("scenario_id")


def _assigned(learner_filter):
    """Staff see by department; learners see only rows reachable from their assignments."""

    def scope(queryset: QuerySet, actor) -> QuerySet:
        if actor.is_learner:
            return queryset.filter(learner_filter(actor))
        return department_scope(queryset, actor)

    return scope


home_scope = _assigned(lambda actor: Q(id__in=learner_homes(actor).values("id")))
practice_scope = _assigned(lambda actor: Q(id__in=learner_practices(actor).values("id")))
simulation_scope = _assigned(lambda actor: Q(id__in=learner_simulation_ids(actor)))
scenario_scope = _assigned(lambda actor: Q(id__in=learner_scenario_ids(actor)))
persona_scope = _assigned(
    lambda actor: Q(
        id__in=m.Scenario.objects.filter(id__in=learner_scenario_ids(actor)).values("persona_id")
    )
)
rubric_scope = _assigned(
    lambda actor: Q(
        id__in=m.Simulation.objects.filter(id__in=learner_simulation_ids(actor)).values("rubric_id")
    )
)
# Through the link table, not a join: a document used by two assigned scenarios stays one row.
document_scope = _assigned(
    lambda actor: Q(
        id__in=m.Scenario.documents.through.objects.filter(
            scenario_id__in=learner_scenario_ids(actor)
        ).values("document_id")
    )
)


def staff_only_scope(queryset: QuerySet, actor) -> QuerySet:
    """Agents, models, tools and evals are staff tooling: learners see none."""
    return (
        department_scope(queryset, actor)
        if any(field.name == "department" for field in queryset.model._meta.get_fields())
        else (queryset if actor.is_staff_role else queryset.none())
    )
