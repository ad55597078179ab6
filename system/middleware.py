"""Browser visits to the staff pages belong to a Session in the books, like API calls do."""

from __future__ import annotations

from system.ledger import session_for_request

BROWSER_PREFIXES = ("/staff/", "/learn/")


class StaffSessionMiddleware:
    """Resolves `request.glow_session` for signed-in users with a profile on staff and learner pages."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(BROWSER_PREFIXES) and request.user.is_authenticated:
            profile = getattr(request.user, "profile", None)
            if profile is not None:
                request.glow_auth = "session"
                session_for_request(request=request, actor=profile)
        return self.get_response(request)
