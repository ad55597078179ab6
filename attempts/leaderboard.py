"""The learner's leaderboard of a simulation: their rank among everyone's graded attempts, with
others' names only where the simulation opts in (the staff page always shows names)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import path

from attempts import analytics
from glow.accounts.models import Profile
from glow.core.errors import NotFound


@login_required
def learner_leaderboard(request, pk):
    try:
        actor = request.user.profile
    except Profile.DoesNotExist:
        raise Http404("No simulation with that id.")
    try:
        simulation = analytics.simulation_access(actor=actor, simulation_id=pk)
    except NotFound as exc:
        raise Http404(exc.detail)
    standings = analytics.leaderboard(actor=actor, simulation=simulation)
    return render(
        request,
        "learn/leaderboard.html",
        {
            "simulation": simulation,
            "standings": standings,
            "you": next((row for row in standings if row.is_you), None),
            "actor": actor,
        },
    )


urlpatterns = [
    path("learn/leaderboard/<uuid:pk>/", learner_leaderboard, name="learn-leaderboard"),
]
