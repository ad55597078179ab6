"""Top-level URLs: sign-in and the learner pages, the artifact API, schema and docs, admin, staff
pages, health."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from attempts import pages as learner_pages
from glow.core import docs, errors
from glow.core.health import healthz
from glow.core.routers import artifact_urlpatterns
from glow.core.schema_etag import with_etag

urlpatterns = [
    path("", learner_pages.root, name="root"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("learn/", include("attempts.page_urls")),
    path("healthz", healthz, name="healthz"),
    # The admin names its pages after the class: catalog.Model became AIModel (issue 25).
    re_path(
        r"^admin/catalog/model/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/catalog/aimodel/%(rest)s", query_string=True),
    ),
    path("admin/", admin.site.urls),
    path("api/v5/schema", with_etag(SpectacularAPIView.as_view()), name="schema"),
    path("api/v5/schema/<str:family>", with_etag(docs.family_schema_view), name="schema-family"),
    path("api/v5/docs", docs.reference_view, name="api-docs"),
    path("api/v5/docs/try", docs.docs_view(), name="api-docs-try"),
    path("api/v5/artifacts/", include((artifact_urlpatterns(), "artifacts"))),
    path("api/v5/", include("glow.core.media_urls")),
    path("staff/", include("system.staff_urls")),
    path("lti/", include("lti.urls")),
    path("", include("attempts.leaderboard")),
]

# Must stay last: any other /api/ path answers the JSON error shape, even with DEBUG on.
API_FALLBACK = [re_path(r"^api/", errors.api_not_found)]


def handler404(request, exception=None):
    if request.path.startswith("/api/"):
        return errors.api_not_found(request, exception)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if errors.database_unavailable():  # e.g. a middleware lost the database: 503, not 500
        return errors.service_unavailable(request)
    if request.path.startswith("/api/"):
        return errors.api_server_error(request)
    from django.views.defaults import server_error

    return server_error(request)


if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

urlpatterns += API_FALLBACK
