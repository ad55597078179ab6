"""factory-boy factories for accounts."""

import factory
from django.contrib.auth import get_user_model

from glow.accounts.models import Cohort, Department, Organization, Profile


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    # Hashed before the INSERT: a password set after it (and not saved) breaks session logins.
    password = factory.django.Password("pw-for-tests")


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Profile

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = "learner"
    display_name = factory.Sequence(lambda n: f"Person {n}")


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Department {n}")


class CohortFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cohort

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Cohort {n}")
