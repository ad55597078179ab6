"""Glow's side of an LTI registration: its organization, used nonces, launched attempts, scores."""

from __future__ import annotations

from django.db import models
from lti_tool.models import LtiContext, LtiRegistration, LtiResourceLink, LtiUser


class RegistrationBinding(models.Model):
    """Which organization a platform registration signs people into (one per registration)."""

    registration = models.OneToOneField(
        LtiRegistration, on_delete=models.CASCADE, related_name="glow_binding"
    )
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="lti_bindings"
    )
    department = models.ForeignKey(
        "accounts.Department",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text="New LMS users join this department (besides the launched entry's).",
    )

    def __str__(self) -> str:
        return f"{self.registration} → {self.organization}"


class UsedNonce(models.Model):
    """A launch's nonce, kept so the same id_token can never sign anyone in twice."""

    nonce = models.CharField(max_length=255, unique=True)
    used_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return self.nonce[:16]


class CourseLink(models.Model):
    """An LMS course (context) and the cohort its roster syncs into."""

    context = models.OneToOneField(LtiContext, on_delete=models.CASCADE, related_name="glow_course")
    cohort = models.ForeignKey(
        "accounts.Cohort", on_delete=models.CASCADE, related_name="lti_courses"
    )
    synced_at = models.DateTimeField(null=True, blank=True)
    synced_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.context} → {self.cohort}"


class LaunchedAttempt(models.Model):
    """An attempt started from an LMS link: where its score goes (the AGS claim of the launch)."""

    attempt = models.OneToOneField(
        "attempts.Attempt", on_delete=models.CASCADE, related_name="lti_launch"
    )
    lti_user = models.ForeignKey(LtiUser, on_delete=models.CASCADE)
    resource_link = models.ForeignKey(LtiResourceLink, on_delete=models.SET_NULL, null=True)
    # The AGS claim: scope, lineitems, lineitem (when the platform bound one to the link).
    ags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.attempt_id} ← {self.lti_user}"


class PassbackStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (will retry)"
    GAVE_UP = "gave_up", "Failed (retries exhausted)"


class ScorePassback(models.Model):
    """One score to send to the LMS gradebook. Written with the completion, so never lost."""

    launched = models.ForeignKey(
        LaunchedAttempt, on_delete=models.CASCADE, related_name="passbacks"
    )
    score = models.PositiveSmallIntegerField(help_text="Percent of the rubric's points.")
    label = models.CharField(max_length=255)
    status = models.CharField(
        max_length=10, choices=PassbackStatus.choices, default=PassbackStatus.PENDING, db_index=True
    )
    tries = models.PositiveSmallIntegerField(default=0)
    next_try_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    lineitem_url = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.score}% → {self.label} ({self.status})"
