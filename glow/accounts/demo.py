"""Demo organizations and people: Demo University (with a full cast) and Other College."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from glow.accounts.models import Cohort, Department, Organization, Profile, Role
from glow.core.seeding import resetting

DEMO_ORG = "Demo University"
OTHER_ORG = "Other College"

PEOPLE = [
    # username, organization, role, display name, department names, cohort names
    ("admin", DEMO_ORG, Role.ADMIN, "Ada Admin", ["Computer Science", "Mathematics"], []),
    ("instructor", DEMO_ORG, Role.INSTRUCTOR, "Ivan Instructor", ["Computer Science"], []),
    ("learner1", DEMO_ORG, Role.LEARNER, "Lena Learner", ["Computer Science"], ["CS-180 TAs Fall"]),
    ("learner2", DEMO_ORG, Role.LEARNER, "Leo Learner", ["Computer Science"], ["CS-180 TAs Fall"]),
    ("learner3", DEMO_ORG, Role.LEARNER, "Lia Learner", ["Mathematics"], ["Math TAs"]),
    ("other_admin", OTHER_ORG, Role.ADMIN, "Otto Admin", ["Biology"], []),
    ("other_learner", OTHER_ORG, Role.LEARNER, "Olga Learner", ["Biology"], ["Bio TAs"]),
]

DEPARTMENTS = {DEMO_ORG: ["Computer Science", "Mathematics"], OTHER_ORG: ["Biology"]}
COHORTS = {
    DEMO_ORG: [("CS-180 TAs Fall", "Computer Science"), ("Math TAs", "Mathematics")],
    OTHER_ORG: [("Bio TAs", "Biology")],
}


def demo_password(username: str) -> str:
    return f"{username}-glow-demo"


def seed(*, stdout) -> None:
    User = get_user_model()
    orgs = {name: Organization.objects.get_or_create(name=name)[0] for name in DEPARTMENTS}
    departments = {}
    for org_name, names in DEPARTMENTS.items():
        for name in names:
            departments[name] = Department.objects.get_or_create(
                organization=orgs[org_name], name=name
            )[0]
    cohorts = {}
    for org_name, pairs in COHORTS.items():
        for name, department in pairs:
            cohort, created = Cohort.objects.get_or_create(
                organization=orgs[org_name],
                name=name,
                defaults={"department": departments[department]},
            )
            if resetting() and not created:
                cohort.department = departments[department]
                cohort.save(update_fields=["department"])
            cohorts[name] = cohort

    # People are created once; a rerun leaves their name, role and groups as staff changed them.
    for username, org_name, role, display, department_names, cohort_names in PEOPLE:
        user, created = User.objects.get_or_create(username=username)
        if created or resetting():
            if created:
                user.set_password(demo_password(username))
            user.is_staff = role in (Role.ADMIN, Role.INSTRUCTOR)
            user.is_superuser = username == "admin"
            user.save()
        profile = Profile.objects.filter(user=user).first()
        if profile is None or resetting():
            profile, _ = Profile.objects.update_or_create(
                user=user,
                defaults={"organization": orgs[org_name], "role": role, "display_name": display},
            )
            profile.departments.set([departments[name] for name in department_names])
            for name in cohort_names:
                cohorts[name].members.add(profile)
        stdout.write(
            f"  {username:<14} {role:<11} {org_name:<16} password: {demo_password(username)}"
        )
