"""The learner's pages under /learn/."""

from django.urls import path

from attempts import pages

urlpatterns = [
    path("", pages.home, name="learn-home"),
    path("practice/", pages.practice, name="learn-practice"),
    path("history/", pages.history, name="learn-history"),
    path("start/", pages.start, name="learn-start"),
    path("attempts/<uuid:attempt_id>/", pages.chat, name="learn-chat"),
    path("attempts/<uuid:attempt_id>/send/", pages.send, name="learn-send"),
    path("attempts/<uuid:attempt_id>/advance/", pages.advance, name="learn-advance"),
    path("attempts/<uuid:attempt_id>/results/", pages.results, name="learn-results"),
]
