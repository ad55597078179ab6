"""Template tags: the books' figures on the admin index, and the staff navigation other apps extend."""

from django import template
from django.urls import reverse

from glow.core.registry import registry
from system.selectors import activity_summary
from system.staff import staff_actor

register = template.Library()


@register.simple_tag(takes_context=True)
def staff_activity(context):
    """The last 30 days' activity the signed-in staff member may see, or None for anyone else."""
    request = context.get("request")
    actor = staff_actor(request) if request is not None else None
    return activity_summary(actor=actor) if actor is not None else None


@register.simple_tag
def staff_nav_links() -> list[tuple[str, str]]:
    """(label, url) of the sections other apps add to the staff navigation (hook "staff_nav":
    each returns a list of (label, url name))."""
    return [
        (label, reverse(url_name))
        for contribution in registry.run_hooks("staff_nav")
        for label, url_name in contribution
    ]
