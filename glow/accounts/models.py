"""Who acts in Glow: organizations own every row; profiles carry a role; API keys are stored hashed."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Department(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="departments"
    )
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="department_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    LEARNER = "learner", "Learner"
    INSTRUCTOR = "instructor", "Instructor"
    ADMIN = "admin", "Admin"


class Profile(models.Model):
    """One per user: the actor every selector scopes by."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="profiles"
    )
    role = models.CharField(
        max_length=20, choices=Role.choices, default=Role.LEARNER, db_index=True
    )
    display_name = models.CharField(max_length=200, blank=True)
    departments = models.ManyToManyField(Department, blank=True, related_name="profiles")

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.display_name or self.user.get_username()

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_instructor(self) -> bool:
        return self.role == Role.INSTRUCTOR

    @property
    def is_learner(self) -> bool:
        return self.role == Role.LEARNER

    @property
    def is_staff_role(self) -> bool:
        return self.role in (Role.ADMIN, Role.INSTRUCTOR)

    def department_ids(self) -> list:
        """Cached per instance: scoping asks for them on every query of a request."""
        if not hasattr(self, "_department_ids"):
            self._department_ids = list(self.departments.values_list("id", flat=True))
        return self._department_ids

    def cohort_ids(self) -> list:
        if not hasattr(self, "_cohort_ids"):
            self._cohort_ids = list(self.cohorts.values_list("id", flat=True))
        return self._cohort_ids


class Cohort(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="cohorts")
    department = models.ForeignKey(
        Department, on_delete=models.SET_NULL, null=True, blank=True, related_name="cohorts"
    )
    name = models.CharField(max_length=200)
    members = models.ManyToManyField(Profile, blank=True, related_name="cohorts")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="cohort_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """A secret shown once at creation; only its SHA-256 and a visible prefix are kept."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or self.profile})"
