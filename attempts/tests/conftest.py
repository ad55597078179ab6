"""Fixtures for the attempt tests: a department with a cohort, a simulation, its entries."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from attempts import lifecycle
from glow.accounts.models import Profile
from glow.accounts.tests.factories import CohortFactory, DepartmentFactory, ProfileFactory
from glow.catalog.models import Home, Practice
from glow.catalog.tests.factories import (
    HomeFactory,
    PracticeFactory,
    RubricFactory,
    SimulationFactory,
)


@pytest.fixture
def world(org_admin, instructor, learner):
    """learner and learner2 in the instructor's department and cohort; a home and a practice."""
    organization = org_admin.organization
    department = DepartmentFactory(organization=organization, name="Computer Science")
    elsewhere = DepartmentFactory(organization=organization, name="Mathematics")
    learner2 = ProfileFactory(role="learner", organization=organization)
    stranger = ProfileFactory(role="learner", organization=organization)
    for profile in (instructor, learner, learner2):
        profile.departments.add(department)
    stranger.departments.add(elsewhere)
    cohort = CohortFactory(organization=organization, department=department, name="TAs Fall")
    cohort.members.add(learner, learner2)
    rubric = RubricFactory(organization=organization, department=department, groups=2)
    simulation = SimulationFactory(
        organization=organization, department=department, rubric=rubric, time_limit_minutes=30
    )
    home = HomeFactory(
        organization=organization, department=department, simulation=simulation, cohort=cohort
    )
    practice = PracticeFactory(
        organization=organization, department=department, simulation=simulation
    )
    return SimpleNamespace(
        organization=organization,
        department=department,
        elsewhere=elsewhere,
        cohort=cohort,
        admin=org_admin,
        instructor=instructor,
        learner=learner,
        learner2=learner2,
        stranger=stranger,
        simulation=simulation,
        rubric=rubric,
        home=home,
        practice=practice,
    )


@pytest.fixture
def start():
    """start(profile, entry) -> a new attempt through the service, as the API would."""

    def start_attempt(profile, entry, **kwargs):
        key = "practice_id" if isinstance(entry, Practice) else "home_id"
        return lifecycle.attempt_start(actor=profile, **{key: entry.pk}, **kwargs)

    return start_attempt


@pytest.fixture
def demo(db):
    """The accounts and catalog demo: learner1 and the CS-180 home entry, as glow_demo makes them."""
    from glow.accounts import demo as accounts_demo
    from glow.catalog import demo as catalog_demo

    out = io.StringIO()
    accounts_demo.seed(stdout=out)
    catalog_demo.seed(stdout=out)
    return SimpleNamespace(
        learner1=Profile.objects.get(user__username="learner1"),
        learner2=Profile.objects.get(user__username="learner2"),
        instructor=Profile.objects.get(user__username="instructor"),
        other_admin=Profile.objects.get(user__username="other_admin"),
        home=Home.objects.get(title="CS-180 TA training: office hours"),
        practice=Practice.objects.get(title="Practice: office hours"),
    )
