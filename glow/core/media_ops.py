"""Universal media ops: uploads, and downloads under both seed spellings (file/download, file_download)."""

from __future__ import annotations

from functools import cache

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from glow.core import media
from glow.core.ops import op
from glow.core.registry import registry
from glow.core.serializers import StrictUUIDField, camel, make

# Multipart only: a urlencoded form cannot carry the file (the schema lists what is parsed).
UPLOAD_PARSERS = [MultiPartParser]
KINDS = ("file", "text", "image", "audio", "video")


class UploadResponse(serializers.Serializer):
    upload_id = serializers.UUIDField()
    file_id = serializers.UUIDField()
    file_name = serializers.CharField()
    file_size = serializers.IntegerField()
    mime_type = serializers.CharField()


class DownloadRequest(serializers.Serializer):
    upload_id = StrictUUIDField()
    file_id = StrictUUIDField(required=False, help_text="Same as upload_id.")

    field_aliases = {"file_id": "upload_id"}


@cache  # one class per family: the schema names components by class
def upload_request(family):
    fields = {"file": serializers.FileField()}
    # A family without rows (system, benchmark) has nothing to attach a file to.
    if family.model is not None:
        fields[family.id_field] = serializers.UUIDField(
            required=False, help_text="The row the file belongs to."
        )
    # Ids any family's upload may carry, declared by the family they belong to (Family.upload_fields).
    for other in registry.families():
        for name in other.upload_fields:
            fields.setdefault(name, serializers.UUIDField(required=False))
    return make(f"{camel(family.name)}UploadRequest", fields)


def binary(family):
    # The bytes come back in the stored file's own type (audio/wav, image/png, application/zip...).
    return {
        (200, "*/*"): OpenApiTypes.BINARY,
        (206, "*/*"): OpenApiTypes.BINARY,
        416: OpenApiResponse(description="The Range lies outside the file (see Content-Range)."),
    }


def owner_of(family, data: dict):
    """The row an upload is stored against: the family's own id, else another family's id that
    family declared in its upload_fields (an attempt's recording sent through persona/audio_upload)."""
    if data.get(family.id_field):
        return family, data[family.id_field]
    for other in registry.families():
        if other.id_field in other.upload_fields and data.get(other.id_field):
            return other, data[other.id_field]
    return None, None


def upload_body(upload) -> dict:
    return {
        "upload_id": upload.id,
        "file_id": upload.id,
        "file_name": upload.file_name,
        "file_size": upload.size,
        "mime_type": upload.mime_type,
    }


def _download_op(kind: str, verb: str):
    inline = verb == "preview"

    def handler(self, request):
        data = self.parse()
        upload = media.upload_access(
            actor=self.actor, pk=data.get("upload_id") or data.get("file_id")
        )
        media.check_kind(upload, kind)
        return media.stream_upload(
            upload, range_header=request.META.get("HTTP_RANGE"), inline=inline
        )

    # The op records the method's name, so it must be final before decorating.
    handler.__name__ = f"{kind}_{verb}"
    summary = (
        f"Stream a stored {kind} ({'inline' if inline else 'as an attachment'}); Range supported."
    )
    return op(
        f"{kind}/{verb}",
        aliases=(f"{kind}_{verb}",),
        request=DownloadRequest,
        response=binary,
        summary=summary,
    )(handler)


class MediaOpsMixin:
    """Given to every family: store a client's file against one of its rows, and read it back."""

    def _store(self, *, allowed_prefix: str | None):
        data = self.parse()
        family, artifact_id = "", None
        owner_family, row_id = owner_of(self.family, data)
        if row_id is not None:
            from glow.core.selectors import artifact_access

            if owner_family.model is None:
                raise media.NotFound("No row with that id.")
            artifact_access(actor=self.actor, family=owner_family, pk=row_id)
            family, artifact_id = owner_family.name, row_id
        upload = media.upload_store(
            actor=self.actor,
            uploaded=data["file"],
            family=family,
            artifact_id=artifact_id,
            allowed_prefix=allowed_prefix,
        )
        return Response(upload_body(upload), status=201)

    @op(
        "audio_upload",
        aliases=("audio/upload",),
        request=upload_request,
        response=UploadResponse,
        parser_classes=UPLOAD_PARSERS,
    )
    def audio_upload(self, request):
        """Upload a recording (multipart `file`); answers its upload_id."""
        return self._store(allowed_prefix="audio/")

    @op(
        "upload",
        aliases=("file/upload", "file_upload"),
        request=upload_request,
        response=UploadResponse,
        parser_classes=UPLOAD_PARSERS,
    )
    def upload(self, request):
        """Upload an image, document or other file (multipart `file`)."""
        return self._store(allowed_prefix=None)


for _kind in KINDS:
    for _verb in ("download", "preview"):
        _handler = _download_op(_kind, _verb)
        setattr(MediaOpsMixin, _handler.__name__, _handler)
