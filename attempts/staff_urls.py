"""Staff URLs of attempts, contributed to /staff/ through the "staff_urls" hook (system/staff_urls.py)."""

from django.urls import path

from attempts import staff, staff_pages

urlpatterns = [
    # Named staff-<family> so system's group pages link an attempt's group here.
    path("attempts/<uuid:pk>/", staff.transcript, name="staff-attempt"),
    path("attempts/", staff_pages.attempt_table, name="staff-attempts"),
    path("attempts/export/", staff_pages.attempt_export, name="staff-attempts-export"),
    path("cohorts/", staff_pages.cohort_list, name="staff-cohorts"),
    path("dashboard/", staff_pages.analytics_dashboard, name="staff-analytics"),
    path("leaderboard/", staff_pages.leaderboard_list, name="staff-leaderboards"),
    path("leaderboard/<uuid:pk>/", staff_pages.leaderboard, name="staff-leaderboard"),
    path("reports/", staff_pages.report_list, name="staff-reports"),
    path("reports/learners/<uuid:pk>/", staff_pages.learner_report, name="staff-report-learner"),
    path("reports/cohorts/<uuid:pk>/", staff_pages.cohort_report, name="staff-report-cohort"),
    path("catalog/persona/<uuid:pk>/try/", staff_pages.persona_try, name="staff-persona-try"),
    path("attempts/<uuid:pk>/review/", staff.review, name="staff-attempt-review"),
    path("attempts/<uuid:pk>/comment/", staff.comment, name="staff-attempt-comment"),
    path("reviews/", staff.review_queue, name="staff-review-queue"),
    path(
        "rubrics/<uuid:pk>/calibration/", staff.rubric_calibration, name="staff-rubric-calibration"
    ),
]
