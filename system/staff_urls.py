"""URLs of the staff pages under /staff/: system's own, then those other apps contribute."""

from django.urls import path, re_path

from glow.core.registry import registry
from system import authoring, staff

urlpatterns = [
    path("", staff.dashboard, name="staff-dashboard"),
    path("sessions/", staff.session_list, name="staff-sessions"),
    path("sessions/<uuid:pk>/", staff.session_detail, name="staff-session"),
    path("groups/<uuid:pk>/", staff.group_detail, name="staff-group"),
    path("catalog/", authoring.catalog_list, name="staff-catalog"),
    re_path(
        r"^catalog/(?P<family_name>persona|scenario|rubric)/new/$",
        authoring.author,
        name="staff-author-new",
    ),
    re_path(
        r"^catalog/(?P<family_name>persona|scenario|rubric)/(?P<pk>[0-9a-f-]{36})/$",
        authoring.author,
        name="staff-author",
    ),
]
# Attempts and tests add their pages here (hook "staff_urls": each returns a list of path()).
for contributed in registry.run_hooks("staff_urls"):
    urlpatterns += contributed
