"""The abstract Artifact every family's model extends, and the generic Draft."""

from __future__ import annotations

import uuid

from django.db import models

from glow.core.ids import uuid7


class ArtifactQuerySet(models.QuerySet):
    def live(self):
        return self.filter(archived=False)

    def for_api(self):
        """Eager loading for API output; families override on their own QuerySet."""
        return self


class Artifact(models.Model):
    """An organization-owned row with a title, optimistic-concurrency version and archive flag.

    Ids sort by creation time (glow.core.ids): a test writes a thousand invocations at once.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        "accounts.Profile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    archived = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)

    objects = ArtifactQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["organization", "archived", "-created_at"], name="%(class)s_org_live"
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Draft(models.Model):
    """Unpublished edits of one row (or of a new row) by one profile, pinned to a base version."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    author = models.ForeignKey("accounts.Profile", on_delete=models.CASCADE, related_name="drafts")
    family = models.CharField(max_length=40)
    artifact_id = models.UUIDField(null=True, blank=True)
    base_version = models.PositiveIntegerField(default=0)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["author", "family", "-updated_at"], name="draft_author_family")
        ]

    def __str__(self) -> str:
        return f"{self.family} draft {self.id}"


class UploadKind(models.TextChoices):
    UPLOAD = "upload", "Uploaded by a client"
    EXPORT = "export", "Export"
    GENERATED = "generated", "Generated media"


class Upload(models.Model):
    """Bytes in Django storage, readable by whoever may read the row they belong to."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    owner = models.ForeignKey(
        "accounts.Profile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=UploadKind.choices, default=UploadKind.UPLOAD)
    # The row it belongs to (e.g. family "attempt" + the attempt's id); empty: only owner and admins.
    family = models.CharField(max_length=40, blank=True)
    artifact_id = models.UUIDField(null=True, blank=True)
    file = models.FileField(upload_to="uploads/%Y/%m/", max_length=300)
    file_name = models.CharField(max_length=255)
    mime_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField(default=0)
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the bytes.")
    row_count = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["family", "artifact_id"], name="upload_artifact")]

    def __str__(self) -> str:
        return self.file_name
