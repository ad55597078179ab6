"""Staff pages over attempts: cohorts, the cohort table, Dashboard, Leaderboard and Reports.

Thin views: parse the filter form, call one selector of `attempts.analytics` (the API's scoping
and FilterSet), render; CSV and the export op answer the same selection the page shows.
"""

from __future__ import annotations

import csv

from django import forms
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from attempts import analytics, exports, lifecycle
from attempts.models import AttemptStatus
from glow.catalog.models import LeaderboardMethod, Simulation
from system.staff import date_field, staff_page

KINDS = [("", "Graded and practice"), ("graded", "Graded only"), ("practice", "Practice only")]


class AttemptFilterForm(forms.Form):
    simulation = forms.ChoiceField(required=False, label="Simulation")
    cohort = forms.ChoiceField(required=False, label="Cohort")
    start_date = date_field("From")
    end_date = date_field("To (inclusive)")
    kind = forms.ChoiceField(required=False, choices=KINDS, label="Kind")
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *AttemptStatus.choices], label="Status"
    )

    def __init__(self, *args, actor, require_simulation: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        simulations = analytics.simulations_for(actor=actor)
        self.fields["simulation"].choices = [
            *([] if require_simulation and simulations else [("", "All simulations")]),
            *((str(s.pk), s.title) for s in simulations),
        ]
        self.fields["cohort"].choices = [("", "All cohorts")] + [
            (str(c.pk), c.name) for c in analytics.cohorts_for(actor=actor).order_by("name")
        ]

    def filters(self) -> analytics.Filters | None:
        """None when a bound form is invalid: a choice the actor may not pick (another
        department's cohort) must never widen the selection to everything."""
        if self.is_bound and not self.is_valid():
            return None
        data = self.cleaned_data if self.is_bound else {}
        simulation = data.get("simulation") or None
        if simulation is None and self.fields["simulation"].choices:
            first = self.fields["simulation"].choices[0][0]
            simulation = first or None
        return analytics.Filters(
            simulation_id=simulation,
            cohort_id=data.get("cohort") or None,
            start_date=data.get("start_date"),
            end_date=data.get("end_date"),
            practice={"graded": False, "practice": True}.get(data.get("kind") or ""),
            status=data.get("status") or None,
        )


def _csv(name: str, header: list[str], rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


def _blank(value):
    return "" if value is None else value


@staff_page
def cohort_list(request):
    cohorts = list(
        analytics.cohorts_for(actor=request.actor).select_related("department").order_by("name")
    )
    figures = {
        figures.cohort_id: figures
        for figures in analytics.dashboard(actor=request.actor, filters=analytics.Filters()).cohorts
    }
    rows = [(cohort, figures.get(cohort.pk)) for cohort in cohorts]
    return render(
        request,
        "staff/cohorts.html",
        {
            "rows": rows,
            "simulations": analytics.simulations_for(actor=request.actor),
            "actor": request.actor,
        },
    )


@staff_page
def attempt_table(request):
    form = AttemptFilterForm(request.GET or None, actor=request.actor, require_simulation=True)
    filters = form.filters()
    table = (
        analytics.cohort_table(actor=request.actor, filters=filters)
        if filters
        else analytics.CohortTable(None, [], [], [], 0)
    )
    if request.GET.get("format") == "csv":
        header = ["learner", "attempts", "completed", "best_score", "last_status", "time_seconds"]
        for scenario in table.scenarios:
            header += [f"{scenario.title}: status", f"{scenario.title}: best score"]
        rows = []
        for row in table.rows:
            line = [
                row.profile.name,
                row.attempt_count,
                row.completed_count,
                _blank(row.best_score),
                row.last_status,
                _blank(row.time_taken),
            ]
            for cell in row.cells:
                line += [cell.status, _blank(cell.best_score)]
            rows.append(line)
        return _csv("cohort-table.csv", header, rows)
    return render(
        request,
        "staff/attempts.html",
        {
            "form": form,
            "table": table,
            "query": request.GET.urlencode(),
            "actor": request.actor,
        },
    )


@require_POST
@staff_page
def attempt_export(request):
    """The seed's export op over exactly the attempts the page shows; answers the ZIP."""
    form = AttemptFilterForm(request.POST, actor=request.actor, require_simulation=True)
    filters = form.filters()
    if filters is None:
        return redirect(f"{reverse('staff-attempts')}?{request.POST.urlencode()}")
    attempts = analytics.filtered_attempts(actor=request.actor, filters=filters)
    result = exports.attempt_export(actor=request.actor, attempts=attempts, view="dashboard")
    return redirect(reverse("media", kwargs={"upload_id": result.upload.pk}))


@staff_page
def analytics_dashboard(request):
    form = AttemptFilterForm(request.GET or None, actor=request.actor)
    filters = form.filters()
    board = analytics.dashboard(
        actor=request.actor,
        filters=filters or analytics.Filters(),
        none=filters is None,
    )
    largest_band = max([max(c.bands) for c in board.criteria] or [1]) or 1
    largest_week = max([w.completed for w in board.weeks] or [1]) or 1
    started = board.funnel[0][1] or 1
    return render(
        request,
        "staff/analytics.html",
        {
            "form": form,
            "board": board,
            "bands": [f"{low}–{min(high, 100)}%" for low, high in analytics.SCORE_BANDS],
            "largest_band": largest_band,
            "largest_week": largest_week,
            "funnel": [
                (label, count, round(count * 100 / started)) for label, count in board.funnel
            ],
            "actor": request.actor,
        },
    )


@staff_page
def leaderboard_list(request):
    simulations = analytics.simulations_for(actor=request.actor)
    if len(simulations) == 1:
        return redirect("staff-leaderboard", pk=simulations[0].pk)
    return render(
        request,
        "staff/leaderboards.html",
        {"simulations": simulations, "actor": request.actor},
    )


class LeaderboardSettingsForm(forms.Form):
    leaderboard_method = forms.ChoiceField(
        choices=LeaderboardMethod.choices, label="Rank learners by"
    )
    leaderboard_shows_names = forms.BooleanField(
        required=False, label="Learners see each other's names"
    )
    version = forms.IntegerField(widget=forms.HiddenInput)


@staff_page
def leaderboard(request, pk):
    simulation = analytics.simulation_access(actor=request.actor, simulation_id=pk)
    settings_form = LeaderboardSettingsForm(
        request.POST or None,
        initial={
            "leaderboard_method": simulation.leaderboard_method,
            "leaderboard_shows_names": simulation.leaderboard_shows_names,
            "version": simulation.version,
        },
    )
    conflict = None
    if request.method == "POST" and settings_form.is_valid():
        from glow.core.errors import ConflictError
        from glow.core.registry import registry
        from glow.core.services import artifact_update

        data = dict(settings_form.cleaned_data)
        version = data.pop("version")
        try:
            artifact_update(
                actor=request.actor,
                family=registry.get("simulation"),
                pk=simulation.pk,
                version=version,
                data=data,
            )
            return redirect("staff-leaderboard", pk=simulation.pk)
        except ConflictError:
            conflict = Simulation.objects.get(pk=simulation.pk)
    cohort_id = request.GET.get("cohort") or None
    cohorts = analytics.cohorts_for(actor=request.actor).order_by("name")
    if cohort_id and not cohorts.filter(pk=cohort_id).exists():
        cohort_id = None
    standings = analytics.leaderboard(
        actor=request.actor, simulation=simulation, cohort_id=cohort_id
    )
    return render(
        request,
        "staff/leaderboard.html",
        {
            "simulation": simulation,
            "standings": standings,
            "settings_form": settings_form,
            "conflict": conflict,
            "cohorts": cohorts,
            "cohort_id": cohort_id,
            "learner_url": reverse("learn-leaderboard", kwargs={"pk": simulation.pk}),
            "actor": request.actor,
        },
    )


@staff_page
def report_list(request):
    from system.selectors import visible_profiles

    learners = list(
        visible_profiles(actor=request.actor)
        .filter(role="learner")
        .select_related("user")
        .order_by("display_name", "user__username")[:500]
    )
    return render(
        request,
        "staff/reports.html",
        {
            "cohorts": analytics.cohorts_for(actor=request.actor).order_by("name"),
            "learners": learners,
            "actor": request.actor,
        },
    )


@staff_page
def learner_report(request, pk):
    profile = analytics.learner_access(actor=request.actor, profile_id=pk)
    report = analytics.learner_report(actor=request.actor, profile=profile)
    if request.GET.get("format") == "csv":
        names = [trend.name for trend in report.criteria]
        by_attempt = {
            attempt.pk: {trend.name: trend.points[i] for trend in report.criteria}
            for i, attempt in enumerate(report.completed)
        }
        rows = [
            [
                attempt.pk,
                attempt.created_at.isoformat(),
                attempt.simulation.title,
                "practice" if attempt.practice else "graded",
                attempt.status,
                _blank(attempt.score),
                _blank(attempt.passed),
                _blank(attempt.time_taken),
                *(_blank(by_attempt.get(attempt.pk, {}).get(name)) for name in names),
            ]
            for attempt in report.attempts
        ]
        header = ["attempt_id", "started", "simulation", "kind", "status", "score", "passed",
                  "time_seconds", *names]  # fmt: skip
        return _csv(f"report-{profile.user.username}.csv", header, rows)
    return render(request, "staff/report_learner.html", {"report": report, "actor": request.actor})


@staff_page
def cohort_report(request, pk):
    cohort = analytics.cohort_access(actor=request.actor, cohort_id=pk)
    report = analytics.cohort_report(actor=request.actor, cohort=cohort)
    if request.GET.get("format") == "csv":
        rows = [
            [
                member.profile.name,
                member.attempt_count,
                member.completed_count,
                _blank(member.mean_score),
                _blank(member.best_score),
                _blank(member.last_score),
                _blank(member.total_time),
            ]
            for member in report.members
        ]
        header = ["learner", "attempts", "completed", "mean_score", "best_score", "last_score",
                  "time_seconds"]  # fmt: skip
        return _csv(f"report-cohort-{cohort.pk}.csv", header, rows)
    return render(request, "staff/report_cohort.html", {"report": report, "actor": request.actor})


def learner_chat_url(attempt_id) -> str:
    """The learner chat page of an attempt (the learner pages name it "learn-chat")."""
    try:
        return reverse("learn-chat", kwargs={"attempt_id": attempt_id})
    except NoReverseMatch:
        return f"/learn/attempts/{attempt_id}/"


@require_POST
@staff_page
def persona_try(request, pk):
    """ "Try it": a practice chat, as the staff member, with the persona as published now, through
    a practice entry whose simulation uses it (the same attempt_start a learner's Practice calls)."""
    from glow.core.registry import registry
    from glow.core.selectors import artifact_access, artifact_queryset

    persona = artifact_access(actor=request.actor, family=registry.get("persona"), pk=pk)
    practice = (
        artifact_queryset(actor=request.actor, family=registry.get("practice"))
        .filter(archived=False, simulation__simulation_scenarios__scenario__persona=persona)
        .order_by("title")
        .first()
    )
    back = reverse("staff-author", kwargs={"family_name": "persona", "pk": persona.pk})
    if practice is None:
        return redirect(f"{back}?done=no-practice")
    attempt = lifecycle.attempt_start(actor=request.actor, practice_id=practice.pk)
    return redirect(learner_chat_url(attempt.pk))
