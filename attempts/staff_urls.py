"""Staff URLs of attempts, contributed to /staff/ through the "staff_urls" hook (system/staff_urls.py)."""

from django.urls import path

from attempts import staff

urlpatterns = [
    # Named staff-<family> so system's group pages link an attempt's group here.
    path("attempts/<uuid:pk>/", staff.transcript, name="staff-attempt"),
    path("attempts/<uuid:pk>/review/", staff.review, name="staff-attempt-review"),
    path("attempts/<uuid:pk>/comment/", staff.comment, name="staff-attempt-comment"),
    path("reviews/", staff.review_queue, name="staff-review-queue"),
    path(
        "rubrics/<uuid:pk>/calibration/", staff.rubric_calibration, name="staff-rubric-calibration"
    ),
]
