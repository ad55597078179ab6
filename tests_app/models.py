"""Tests (model x scenario x agent fan-outs), their invocations, tool calls, grades, feedback, secrets."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.db.models import Count, Q

from glow.catalog.grading import GradeSource
from glow.core.ids import uuid7
from glow.core.models import Artifact, ArtifactQuerySet

COST = {"max_digits": 14, "decimal_places": 6, "default": Decimal("0")}
# Model calls are I/O: a remote provider serves many at once (a cell has one call in flight).
DEFAULT_CONCURRENCY = 16
MAX_CONCURRENCY = 64


class TestStatus(models.TextChoices):
    RUNNING = "running", "Running"
    # Every cell has ended on its own; still open (grades, re-runs), unlike completed.
    FINISHED = "finished", "Finished"
    STOPPED = "stopped", "Stopped"
    COMPLETED = "completed", "Completed"


class InvocationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    TERMINATED = "terminated", "Terminated"
    COMPLETED = "completed", "Completed"


ACTIVE = (InvocationStatus.QUEUED, InvocationStatus.RUNNING)
DONE = (
    InvocationStatus.SUCCEEDED,
    InvocationStatus.FAILED,
    InvocationStatus.TERMINATED,
    InvocationStatus.COMPLETED,
)


def status_counts() -> dict:
    """One COUNT per status over the invocations join: a list gets every test's progress at once."""
    return {
        f"{status}_count": Count("invocations", filter=Q(invocations__status=status))
        for status in InvocationStatus.values
    }


class TestQuerySet(ArtifactQuerySet):
    def for_api(self):
        return self.select_related("eval", "department", "started_by__user").annotate(
            invocation_count=Count("invocations"), **status_counts()
        )


class Test(Artifact):
    """One fan-out batch: every model x scenario x agent cell of an eval becomes an invocation."""

    eval = models.ForeignKey("catalog.Eval", on_delete=models.PROTECT, related_name="tests")
    # Copied from the eval at start so search and scoping never join through it.
    department = models.ForeignKey(
        "accounts.Department", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=TestStatus.choices, default=TestStatus.RUNNING, db_index=True
    )
    started_by = models.ForeignKey(
        "accounts.Profile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    concurrency = models.PositiveSmallIntegerField(
        default=DEFAULT_CONCURRENCY,
        help_text="How many of this test's invocations may run at once.",
    )
    group = models.ForeignKey(
        "system.Group", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Axis order as given at start (and extended by invocation/create): the benchmark's order.
    axes = models.JSONField(default=dict, blank=True)
    # How many times test/start ran each cell (Invocation.repeat 0..repeats-1).
    repeats = models.PositiveSmallIntegerField(default=1)
    completed_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)

    objects = TestQuerySet.as_manager()

    class Meta(Artifact.Meta):
        indexes = [
            *Artifact.Meta.indexes,
            models.Index(fields=["organization", "eval", "-created_at"], name="test_org_eval"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "started_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="test_idempotency_key_once",
            )
        ]


class InvocationQuerySet(ArtifactQuerySet):
    def for_api(self):
        return self.select_related("test", "model", "scenario", "agent")


class Invocation(Artifact):
    """One cell of a test: an agent on a model talking with a scenario's persona."""

    # A test/start writes a thousand of these at once: no single-column index the composite
    # indexes below already cover (organization, test) or that nothing reads by (created_*).
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    created_by = models.ForeignKey(
        "accounts.Profile",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    test = models.ForeignKey(
        Test, on_delete=models.CASCADE, related_name="invocations", db_index=False
    )
    model = models.ForeignKey("catalog.AIModel", on_delete=models.PROTECT, related_name="+")
    scenario = models.ForeignKey("catalog.Scenario", on_delete=models.PROTECT, related_name="+")
    agent = models.ForeignKey("catalog.Agent", on_delete=models.PROTECT, related_name="+")
    # The cell's model parameters; None: the agent's parameter set, if it has one.
    parameter_set = models.ForeignKey(
        "catalog.ParameterSet", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    position = models.PositiveIntegerField(default=0)
    # Repeated runs of one cell (test/start `repeats`): which run this is, and the seed the
    # runner hands the models so repeats differ.
    repeat = models.PositiveSmallIntegerField(default=0)
    seed = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=12, choices=InvocationStatus.choices, default=InvocationStatus.QUEUED
    )
    # [{"role": "agent"|"persona", "content", "turn", "run_id", "tool_call_ids"}]
    transcript = models.JSONField(default=list, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(**COST)
    error = models.TextField(blank=True)
    # Ids of the SecretKeys this invocation may decrypt (test/decrypt checks membership).
    key_ids = models.JSONField(default=list, blank=True)
    # The invocation's own Run: its events are the trace's lifecycle; model calls are sibling runs.
    # A plain id, not a foreign key: runs may be purged with their session, and an index for
    # SET NULL would be one more to write per row at start.
    run_id = models.UUIDField(null=True, blank=True)
    # Which worker task claimed it: a redelivered task resumes its own invocation.
    worker_token = models.CharField(max_length=40, blank=True)
    # A running cell's claim holds until then; its worker renews it while alive, and a cell
    # whose lease ran out (its worker died) goes back to the queue.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = InvocationQuerySet.as_manager()

    class Meta(Artifact.Meta):
        ordering = ["position", "created_at"]
        indexes = [
            *Artifact.Meta.indexes,
            models.Index(fields=["test", "status", "position"], name="invocation_test_status"),
        ]


class ToolCall(models.Model):
    """A tool the agent called during an invocation, with its arguments and result."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    invocation = models.ForeignKey(Invocation, on_delete=models.CASCADE, related_name="tool_calls")
    position = models.PositiveIntegerField()
    turn = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    arguments = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    run = models.ForeignKey(
        "system.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["invocation", "position"], name="tool_call_position")
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.position + 1}"


class TestGrade(models.Model):
    """The grade of one invocation: the rubric grader's, until staff set a score."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    invocation = models.OneToOneField(Invocation, on_delete=models.CASCADE, related_name="grade")
    score = models.DecimalField(max_digits=10, decimal_places=2)
    total_points = models.PositiveIntegerField()
    full = models.BooleanField(default=False)
    source = models.CharField(max_length=10, choices=GradeSource.choices, default=GradeSource.AI)
    # [{"standard_group_id", "name", "score", "total_points"}] from the grader (or all full).
    groups = models.JSONField(default=list, blank=True)
    feedback = models.TextField(blank=True)
    graded_by = models.ForeignKey(
        "accounts.Profile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.score}/{self.total_points}"


class Feedback(models.Model):
    """A comment and score for one standard group, on one tool call (or, without one, on the
    invocation as a whole), under one grade."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    grade = models.ForeignKey(TestGrade, on_delete=models.CASCADE, related_name="feedback_rows")
    tool_call = models.ForeignKey(
        ToolCall, on_delete=models.CASCADE, null=True, blank=True, related_name="feedback"
    )
    standard_group = models.ForeignKey(
        "catalog.StandardGroup", on_delete=models.CASCADE, related_name="+"
    )
    score = models.DecimalField(max_digits=10, decimal_places=2)
    feedback = models.TextField(blank=True)
    author = models.ForeignKey(
        "accounts.Profile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grade", "tool_call", "standard_group"], name="feedback_once_per_triple"
            ),
            models.UniqueConstraint(
                fields=["grade", "standard_group"],
                condition=Q(tool_call__isnull=True),
                name="feedback_once_per_invocation_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.score} on {self.standard_group_id}"


class SecretKey(models.Model):
    """A secret an invocation may use, encrypted at rest (tests_app.crypto); only the label is plain."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    label = models.CharField(max_length=200)
    ciphertext = models.TextField(editable=False)
    created_by = models.ForeignKey(
        "accounts.Profile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label

    @property
    def aad(self) -> str:
        return f"{self.organization_id}:{self.id}"
