"""Staff URLs of attempts, contributed to /staff/ through the "staff_urls" hook (system/staff_urls.py)."""

from django.urls import path

from attempts import staff

urlpatterns = [
    # Named staff-<family> so system's group pages link an attempt's group here.
    path("attempts/<uuid:pk>/", staff.transcript, name="staff-attempt"),
]
