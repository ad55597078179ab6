"""GET /api/v5/media/<upload_id>: the same bytes as the download ops, with range requests for players."""

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from glow.core import media
from glow.core.identity import actor_of


class MediaView(APIView):
    @extend_schema(
        operation_id="media_get",
        responses={
            (200, "*/*"): OpenApiTypes.BINARY,
            (206, "*/*"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request, upload_id):
        upload = media.upload_access(actor=actor_of(request), pk=upload_id)
        return media.stream_upload(upload, range_header=request.META.get("HTTP_RANGE"), inline=True)


urlpatterns = [path("media/<uuid:upload_id>", MediaView.as_view(), name="media")]
