"""A learner's run through a simulation: the attempt, its chats and messages, grades, completion."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from glow.catalog.grading import GradeSource
from glow.catalog.models import Modality
from glow.core.ids import uuid7
from glow.core.models import Artifact, ArtifactQuerySet


class AttemptStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"


class ChatStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"


class Role(models.TextChoices):
    USER = "user", "Learner"
    ASSISTANT = "assistant", "Persona"
    SYSTEM = "system", "System"


# The entry lists a grade carries, each a JSON list of objects (seed 001's AttemptGrade*Entry).
GRADE_ENTRY_KINDS = (
    "feedbacks",
    "strengths",
    "improvements",
    "analyses",
    "highlights",
    "replacements",
)


class AttemptQuerySet(ArtifactQuerySet):
    def for_api(self):
        """Everything a search row or an export line shows, fetched once per page, but the
        personas' names: attach_persona_titles adds those to the rows."""
        return self.select_related("simulation", "profile__user", "department", "cohort")


def attach_persona_titles(rows: list) -> list:
    """Set each attempt's `persona_titles` (its simulation's personas, in scenario order) from
    one query of two columns. Prefetching the scenario chain instead built three model
    instances per scenario of every simulation on the page: 1.8 ms more per page of 25."""
    from glow.catalog.models import SimulationScenario

    titles: dict = {row.simulation_id: [] for row in rows}
    if titles:
        links = (
            SimulationScenario.objects.filter(simulation_id__in=titles)
            .order_by("position")
            .values_list("simulation_id", "scenario__persona__title")
        )
        for simulation_id, title in links:
            titles[simulation_id].append(title)
    for row in rows:
        row.persona_titles = titles[row.simulation_id]
    return rows


class Attempt(Artifact):
    """One learner's run: owns its chats, its grading rollup and its lifecycle state."""

    profile = models.ForeignKey(
        "accounts.Profile", on_delete=models.CASCADE, related_name="attempts"
    )
    simulation = models.ForeignKey(
        "catalog.Simulation", on_delete=models.PROTECT, related_name="attempts"
    )
    home = models.ForeignKey(
        "catalog.Home", on_delete=models.SET_NULL, null=True, blank=True, related_name="attempts"
    )
    practice_entry = models.ForeignKey(
        "catalog.Practice",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="attempts",
    )
    practice = models.BooleanField(default=False)
    infinite_mode = models.BooleanField(default=False)
    status = models.CharField(
        max_length=12, choices=AttemptStatus.choices, default=AttemptStatus.IN_PROGRESS
    )
    started_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    group = models.ForeignKey(
        "system.Group", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    current_chat_index = models.PositiveIntegerField(default=0)
    # Counters kept by the services in the same transaction, so lists never count per row.
    chat_count = models.PositiveIntegerField(default=0)
    ended_chat_count = models.PositiveIntegerField(default=0)
    message_count = models.PositiveIntegerField(default=0)
    # The rollup: a percent of the rubric's points, kept current as chats are graded.
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    time_taken = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    # Denormalised from the entry and the learner so facets and dashboards never join.
    department = models.ForeignKey(
        "accounts.Department", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cohort = models.ForeignKey(
        "accounts.Cohort", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    idempotency_key = models.CharField(max_length=200, blank=True)

    objects = AttemptQuerySet.as_manager()

    class Meta(Artifact.Meta):
        indexes = [
            *Artifact.Meta.indexes,
            models.Index(
                fields=["profile", "archived", "-created_at"], name="attempt_profile_live"
            ),
            models.Index(
                fields=["department", "archived", "-created_at"], name="attempt_department_live"
            ),
            models.Index(fields=["cohort", "archived", "-created_at"], name="attempt_cohort_live"),
            models.Index(
                fields=["simulation", "archived", "-created_at"], name="attempt_simulation_live"
            ),
            models.Index(
                fields=["organization", "archived", "simulation", "department", "cohort"],
                name="attempt_org_facets",
            ),
            models.Index(fields=["profile", "simulation", "started_at"], name="attempt_previous"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="attempt_idempotency_key_once",
            ),
            models.CheckConstraint(
                condition=Q(home__isnull=True) | Q(practice_entry__isnull=True),
                name="attempt_one_entry",
            ),
        ]

    @property
    def entry_id(self):
        return self.home_id or self.practice_entry_id

    @property
    def is_active(self) -> bool:
        return self.status == AttemptStatus.IN_PROGRESS and not self.archived


class Chat(models.Model):
    """One scenario's conversation inside an attempt."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="chats")
    scenario = models.ForeignKey("catalog.Scenario", on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=ChatStatus.choices, default=ChatStatus.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    # The tip of the current branch: a retry (parent_message_id) moves it.
    last_message = models.ForeignKey(
        "Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    grade = models.ForeignKey(
        "Grade", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["attempt", "position"]
        constraints = [
            models.UniqueConstraint(fields=["attempt", "position"], name="chat_position_once")
        ]

    def __str__(self) -> str:
        return f"Chat {self.position + 1} of {self.attempt_id}"

    @property
    def time_taken(self) -> int | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0, int((self.ended_at - self.started_at).total_seconds()))

    @property
    def audio_mode(self) -> bool:
        """Audio scenarios' chats are spoken: the learner talks, the persona answers aloud."""
        return self.scenario.modality == Modality.AUDIO


class Message(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children"
    )
    hints = models.JSONField(default=list, blank=True)
    contents = models.JSONField(default=list, blank=True)
    run = models.ForeignKey(
        "system.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    stopped = models.BooleanField(default=False)
    # A persona reply's persona-fidelity flags ([{"code", "detail"}], glow.ai.fidelity).
    fidelity_flags = models.JSONField(default=list, blank=True)
    # Spoken turns: the learner's recording, or the persona's synthesised reply.
    audio_upload = models.ForeignKey(
        "core.Upload", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["chat", "seq"]
        constraints = [models.UniqueConstraint(fields=["chat", "seq"], name="message_seq_once")]

    def __str__(self) -> str:
        return f"{self.role} #{self.seq}"


class Grade(models.Model):
    """One grading of one chat; a regrade adds a row and the chat points at the newest."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="grades")
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="grades")
    score = models.PositiveSmallIntegerField(help_text="Percent of the rubric's points.")
    points = models.PositiveIntegerField(default=0)
    total_points = models.PositiveIntegerField(default=0)
    passed = models.BooleanField(default=False)
    time_taken = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    feedbacks = models.JSONField(default=list, blank=True)
    strengths = models.JSONField(default=list, blank=True)
    improvements = models.JSONField(default=list, blank=True)
    analyses = models.JSONField(default=list, blank=True)
    highlights = models.JSONField(default=list, blank=True)
    replacements = models.JSONField(default=list, blank=True)
    # [{"standard_id", "group_id", "score", "points", "feedback"}]
    standard_scores = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=10, choices=GradeSource.choices)
    copied_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    run = models.ForeignKey(
        "system.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    instructions = models.JSONField(default=list, blank=True)
    # A reviewed grade is the grade it is `based_on` (the AI's, kept as it was) with staff's
    # criterion scores laid over it; the chat points at it, so every rollup uses the human's.
    based_on = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # How many judge samples were taken, and the largest spread (max - min) of one criterion's
    # samples as a fraction of its points: the review queue's order.
    judge_samples = models.PositiveSmallIntegerField(default=1)
    judge_spread = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        "accounts.Profile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["chat", "created_at"]
        indexes = [models.Index(fields=["attempt", "created_at"], name="grade_attempt_created")]

    def __str__(self) -> str:
        return f"{self.score}% ({self.source})"


class Review(models.Model):
    """Staff's grade of one criterion (rubric standard) of one chat: kept beside the AI's."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="reviews")
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="reviews")
    standard = models.ForeignKey("catalog.Standard", on_delete=models.CASCADE, related_name="+")
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True)
    # The AI judge's score of this criterion in the chat's current AI grade: calibration pairs.
    ai_score = models.PositiveSmallIntegerField(null=True, blank=True)
    reviewer = models.ForeignKey(
        "accounts.Profile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["chat", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["chat", "standard"], name="review_once_per_criterion")
        ]
        indexes = [models.Index(fields=["standard", "chat"], name="review_standard")]

    def __str__(self) -> str:
        return f"{self.score} on {self.standard_id}"


class CommentVisibility(models.TextChoices):
    LEARNER = "learner", "Learner and staff"
    STAFF = "staff", "Staff only"


class TurnComment(models.Model):
    """Staff's comment on one turn of a chat; `learner` ones show beside the turn on results."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="turn_comments")
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="turn_comments")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="comments")
    body = models.TextField()
    visibility = models.CharField(
        max_length=10, choices=CommentVisibility.choices, default=CommentVisibility.LEARNER
    )
    author = models.ForeignKey(
        "accounts.Profile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["chat", "created_at"]
        indexes = [models.Index(fields=["attempt", "created_at"], name="turn_comment_attempt")]

    def __str__(self) -> str:
        return f"Comment on {self.message_id} ({self.visibility})"


class Completion(models.Model):
    """The frozen rollup of an attempt: written once by `complete`, answered again on retries."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    attempt = models.OneToOneField(Attempt, on_delete=models.CASCADE, related_name="completion")
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    points = models.PositiveIntegerField(default=0)
    total_points = models.PositiveIntegerField(default=0)
    passed = models.BooleanField(default=False)
    time_taken = models.PositiveIntegerField(null=True, blank=True)
    # [{"group_id", "name", "score", "total_points", "percent"}] summed across chats.
    groups = models.JSONField(default=list, blank=True)
    # [{"standard_id", "group_id", "name", "score", "total_points"}] summed across chats.
    standards = models.JSONField(default=list, blank=True)
    graded_chat_count = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        "accounts.Profile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Completion of {self.attempt_id}"


class QuestionResponse(models.Model):
    """A learner's answer to one question of a video scenario; answering again replaces it."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="question_responses")
    question_id = models.CharField(max_length=100)
    option_ids = models.JSONField(default=list)
    is_correct = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["chat", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["chat", "question_id"], name="question_response_once")
        ]

    def __str__(self) -> str:
        return f"{self.question_id}: {'correct' if self.is_correct else 'incorrect'}"


class AttemptCount(models.Model):
    """How many attempts share one learner, simulation, department, cohort, practice and archived
    state: the materialised counts behind search totals and facets on large histories.

    Kept exact by the services (start, archive) per learner; `refresh` rebuilds them.
    """

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    profile = models.ForeignKey("accounts.Profile", on_delete=models.CASCADE, related_name="+")
    simulation = models.ForeignKey("catalog.Simulation", on_delete=models.CASCADE, related_name="+")
    # SET_NULL like the attempt's own columns, so both stay equal when a department goes.
    department = models.ForeignKey(
        "accounts.Department", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    cohort = models.ForeignKey(
        "accounts.Cohort", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    practice = models.BooleanField()
    archived = models.BooleanField()
    count = models.PositiveIntegerField()

    class Meta:
        # One per search facet: its counts are an index-only scan in the facet's order (half
        # the time of scanning and hashing the rows: the search's largest part).
        indexes = [
            models.Index(
                fields=["organization", "archived", facet],
                include=["count"],
                name=f"attempt_count_{facet}",
            )
            for facet in ("simulation", "department", "cohort", "profile")
        ]

    def __str__(self) -> str:
        return f"{self.count} attempts of {self.profile_id} at {self.simulation_id}"


class AudioSessionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    STOPPED = "stopped", "Stopped"


class AudioSession(models.Model):
    """A spoken conversation in one chat: frames come in until it stops; its Run holds its events."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="audio_sessions")
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="audio_sessions")
    group = models.ForeignKey("system.Group", on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey("system.Run", on_delete=models.CASCADE, related_name="+")
    profile = models.ForeignKey("accounts.Profile", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=10, choices=AudioSessionStatus.choices, default=AudioSessionStatus.ACTIVE
    )
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    frames_received = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["chat", "-started_at"]
        constraints = [
            # audio/start answers the open session instead of opening a second one.
            models.UniqueConstraint(
                fields=["chat"],
                condition=Q(status="active"),
                name="audio_session_one_active_per_chat",
            )
        ]

    def __str__(self) -> str:
        return f"Audio session of {self.chat_id} ({self.status})"
