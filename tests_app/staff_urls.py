"""Staff URLs of tests, contributed to /staff/ through the "staff_urls" hook (system/staff_urls.py)."""

from django.urls import path

from tests_app import staff

urlpatterns = [
    path("tests/", staff.test_list, name="staff-tests"),
    path("tests/new/", staff.test_new, name="staff-test-new"),
    # Named staff-<family> so system's group pages link a test's group here (system.staff.artifact_url).
    path("tests/<uuid:pk>/benchmark/", staff.benchmark, name="staff-test"),
    path("tests/<uuid:pk>/compare/", staff.benchmark_compare, name="staff-benchmark-compare"),
    path("invocations/<uuid:pk>/", staff.invocation_trace, name="staff-invocation"),
]
