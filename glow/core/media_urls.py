"""GET /api/v5/media/<upload_id>: the same bytes as the download ops, with range requests for players."""

from django.urls import path
from rest_framework.views import APIView

from glow.accounts.auth import actor_of
from glow.core import media


class MediaView(APIView):
    def get(self, request, upload_id):
        upload = media.upload_access(actor=actor_of(request), pk=upload_id)
        return media.stream_upload(upload, range_header=request.META.get("HTTP_RANGE"), inline=True)


urlpatterns = [path("media/<uuid:upload_id>", MediaView.as_view(), name="media")]
