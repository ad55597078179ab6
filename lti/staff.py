"""The staff page of LMS score passbacks: what went to the gradebook, what waits, and why."""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from lti import selectors, services
from system.staff import staff_page


@staff_page
@require_http_methods(["GET", "POST"])
def passback_list(request):
    if request.method == "POST":
        visible = {row.pk for row in selectors.passback_list(actor=request.actor)}
        ids = [int(pk) for pk in request.POST.getlist("passback_id") if pk.isdigit()]
        services.passback_retry(passback_ids=[pk for pk in ids if pk in visible])
        return redirect("staff-lms-scores")
    rows = selectors.passback_list(actor=request.actor)
    return render(request, "lti/staff_scores.html", {"rows": rows, "actor": request.actor})


def staff_urls() -> list:
    from django.urls import path

    return [path("lms-scores/", passback_list, name="staff-lms-scores")]
