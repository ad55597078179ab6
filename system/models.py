"""The books of every visit: sessions, generation groups, model runs, their events, and the audit timeline."""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from glow.core.ids import uuid7

COST = {"max_digits": 14, "decimal_places": 6, "default": Decimal("0")}


class ClientKind(models.TextChoices):
    BROWSER = "browser", "Browser"
    API = "api", "API"
    CLI = "cli", "CLI"
    MCP = "mcp", "MCP agent"


class Session(models.Model):
    """One visit by a profile; a new one starts after GLOW_SESSION_IDLE_MINUTES of silence."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    profile = models.ForeignKey(
        "accounts.Profile", on_delete=models.CASCADE, related_name="sessions"
    )
    client_kind = models.CharField(
        max_length=10, choices=ClientKind.choices, default=ClientKind.API
    )
    auth = models.CharField(max_length=20, default="api_key")
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()
    active = models.BooleanField(default=True)
    # Kept in the same transaction as the runs they count, so lists never aggregate per row.
    group_count = models.PositiveIntegerField(default=0)
    run_count = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    total_cost = models.DecimalField(**COST)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="session_org_created"),
            models.Index(fields=["profile", "-last_seen_at"], name="session_profile_seen"),
        ]

    def __str__(self) -> str:
        return f"Session {self.id} ({self.profile_id})"


class Group(models.Model):
    """A generation window inside a session: every run of one artifact flow (an attempt, a generate)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="groups")
    profile = models.ForeignKey("accounts.Profile", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=300)
    family = models.CharField(max_length=40, db_index=True)
    artifact_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    first_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    run_count = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    total_cost = models.DecimalField(**COST)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["session", "created_at"], name="group_session_created"),
            models.Index(fields=["organization", "family", "-created_at"], name="group_org_family"),
            models.Index(fields=["profile", "family", "-created_at"], name="group_profile_family"),
        ]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class Run(models.Model):
    """One model call or one generation: tokens, dollar cost, latency, status, error."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No single-column indexes where a composite index below starts with the column: every
    # index is written on each of the thousands of runs a test's grid books per second.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="runs", db_index=False)
    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, related_name="runs", db_index=False
    )
    profile = models.ForeignKey("accounts.Profile", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=40)  # generate, persona_reply, hint, grade, agent_turn, ...
    family = models.CharField(max_length=40, blank=True)
    model = models.ForeignKey(
        "catalog.AIModel", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    provider = models.CharField(max_length=20, blank=True)
    provider_model = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(**COST)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A model call's: request sent to last byte (retries included). Other runs: start to finish.
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # A streamed call's: request sent to its first delta.
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    client_run_id = models.CharField(max_length=100, blank=True)
    mcp = models.BooleanField(default=False)
    artifact_id = models.UUIDField(null=True, blank=True)
    # What was asked and answered, for the group drill-down (system/group include_detail).
    messages = models.JSONField(default=list, blank=True)
    output = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    event_seq = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["group", "created_at"], name="run_group_created"),
            models.Index(fields=["session", "created_at"], name="run_session_created"),
            models.Index(fields=["organization", "-created_at"], name="run_org_created"),
            models.Index(fields=["organization", "status"], name="run_org_status"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "client_run_id"],
                condition=~models.Q(client_run_id=""),
                name="run_client_run_id_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} run {self.id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class Event(models.Model):
    """A typed event of a run, numbered per run; the SSE stream replays these."""

    id = models.BigAutoField(primary_key=True)
    # Indexed by event_run_seq_once and event_group_id, which start with these columns.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events", db_index=False)
    group = models.ForeignKey(
        Group, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    seq = models.PositiveIntegerField()
    event_type = models.CharField(max_length=60)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="event_run_seq_once")]
        indexes = [models.Index(fields=["group", "id"], name="event_group_id")]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.seq}"


class TimelineEvent(models.Model):
    """Append-only audit: who did what to which entity, when (exports, decrypts, archives, keys)."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    session = models.ForeignKey(
        Session, on_delete=models.SET_NULL, null=True, blank=True, related_name="timeline"
    )
    actor = models.ForeignKey(
        "accounts.Profile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    event_type = models.CharField(max_length=60)
    entity_id = models.CharField(max_length=64, blank=True)
    entity_name = models.CharField(max_length=300, blank=True)
    extra_1 = models.CharField(max_length=300, blank=True)
    extra_2 = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["session", "created_at"], name="timeline_session_created"),
            models.Index(
                fields=["organization", "event_type", "-created_at"], name="timeline_org_type"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.entity_name or self.entity_id}"
