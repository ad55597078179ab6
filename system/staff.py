"""Server-rendered staff pages: activity dashboard, sessions, and session and group drill-downs.

They read the same selectors as the system API, so every figure matches the API's.
Other apps add pages through the "staff_urls" hook and guard them with `staff_page`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django import forms
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from glow.accounts.models import Profile
from glow.core.errors import ApplicationError, NotFound
from glow.core.templatetags.glow_format import count, money
from system import selectors
from system.charts import bar_chart

PAGE_SIZE = 25
MAX_PROFILE_OPTIONS = 500


def staff_actor(request) -> Profile | None:
    """The signed-in user's profile if it holds a staff role."""
    try:
        profile = request.user.profile
    except (AttributeError, Profile.DoesNotExist):
        return None
    return profile if profile.is_staff_role else None


def staff_page(view: Callable) -> Callable:
    """Staff roles only: anonymous users go to the login page, anyone else gets 403; an id the
    actor may not see (another organization's) answers 404. The view gets `request.actor`."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        actor = staff_actor(request)
        if actor is None:
            return render(request, "staff/403.html", status=403)
        request.actor = actor
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.detail)

    return wrapper


def artifact_url(family: str, pk) -> str | None:
    """The staff page of a group's artifact, when an app contributed one named staff-<family>."""
    if not pk:
        return None
    try:
        return reverse(f"staff-{family}", kwargs={"pk": pk})
    except NoReverseMatch:
        return None


def date_field(label: str) -> forms.DateField:
    """A date with the browser's date picker (ISO in, ISO out)."""
    return forms.DateField(
        required=False,
        label=label,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )


class ActivityForm(forms.Form):
    start_date = date_field("From")
    end_date = date_field("To (inclusive)")


@staff_page
def dashboard(request):
    form = ActivityForm(request.GET or None)
    dates = form.cleaned_data if form.is_valid() else {}
    try:
        activity = selectors.activity_summary(
            actor=request.actor,
            start_date=dates.get("start_date"),
            end_date=dates.get("end_date"),
        )
    except ApplicationError as exc:
        form.add_error(None, exc.detail)
        activity = selectors.activity_summary(actor=request.actor)
    days = [day.day.isoformat() for day in activity.days]
    series = [
        ("chart-sessions", "Sessions per day", [day.session_count for day in activity.days], count),
        ("chart-tokens", "Tokens per day", [day.total_tokens for day in activity.days], count),
        ("chart-cost", "Cost per day", [day.total_cost for day in activity.days], money),
    ]
    charts = [
        {
            "title": title,
            "svg": bar_chart(
                chart_id=chart_id,
                title=title,
                points=list(zip(days, values, strict=True)),
                label=label,
            ),
        }
        for chart_id, title, values, label in series
    ]
    return render(
        request,
        "staff/dashboard.html",
        {"activity": activity, "charts": charts, "form": form, "actor": request.actor},
    )


class SessionFilterForm(forms.Form):
    profile = forms.ChoiceField(required=False, label="Person")
    start_date = date_field("From")
    end_date = date_field("To (inclusive)")
    active = forms.ChoiceField(
        required=False,
        choices=[("", "Any"), ("yes", "Active"), ("no", "Ended")],
        label="State",
    )
    page = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args, profiles, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].choices = [("", "Everyone")] + [
            (str(profile.pk), profile.name) for profile in profiles
        ]


@staff_page
def session_list(request):
    profiles = list(
        selectors.visible_profiles(actor=request.actor)
        .select_related("user")
        .order_by("display_name", "user__username")[:MAX_PROFILE_OPTIONS]
    )
    form = SessionFilterForm(request.GET or None, profiles=profiles)
    form.is_valid()
    chosen = getattr(form, "cleaned_data", {})
    params = {
        "page_size": PAGE_SIZE,
        "page_offset": (chosen.get("page") or 0) * PAGE_SIZE,
        "start_date": chosen.get("start_date"),
        "end_date": chosen.get("end_date"),
        "active": {"yes": True, "no": False}.get(chosen.get("active") or ""),
        "profile_ids": [chosen["profile"]] if chosen.get("profile") else None,
    }
    page = selectors.session_list(actor=request.actor, params=params)
    number = page.page.offset // PAGE_SIZE
    query = request.GET.copy()
    query.pop("page", None)

    def page_link(target: int) -> str:
        query["page"] = str(target)
        return f"?{query.urlencode()}"

    return render(
        request,
        "staff/sessions.html",
        {
            "form": form,
            "page": page,
            "page_number": number + 1,
            "page_count": max((page.total_count + PAGE_SIZE - 1) // PAGE_SIZE, 1),
            "previous_link": page_link(number - 1) if number > 0 else None,
            "next_link": page_link(number + 1)
            if page.page.offset + PAGE_SIZE < page.total_count
            else None,
            "actor": request.actor,
        },
    )


class TimelineFilterForm(forms.Form):
    event_type = forms.ChoiceField(required=False, label="Event type")

    def __init__(self, *args, kinds: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["event_type"].choices = [("", "All events")] + [(k, k) for k in kinds]


@staff_page
def session_detail(request, pk):
    session = selectors.session_access(actor=request.actor, session_id=pk)
    form = TimelineFilterForm(
        request.GET or None, kinds=selectors.session_event_types(session=session)
    )
    chosen = form.cleaned_data.get("event_type") if form.is_valid() else ""
    detail = selectors.session_detail(
        actor=request.actor, session_id=pk, event_types=[chosen] if chosen else None
    )
    groups = [(group, artifact_url(group.family, group.artifact_id)) for group in detail.groups]
    return render(
        request,
        "staff/session.html",
        {
            "detail": detail,
            "session": detail.session,
            "groups": groups,
            "actor": request.actor,
            "form": form,
        },
    )


@staff_page
def group_detail(request, pk):
    group = selectors.group_access(actor=request.actor, group_id=pk)
    runs = selectors.group_runs(group=group, include_detail=True)
    return render(
        request,
        "staff/group.html",
        {
            "group": group,
            "runs": runs,
            "artifact_link": artifact_url(group.family, group.artifact_id),
            "actor": request.actor,
        },
    )
