"""Lets the LMS that launched a session frame Glow's pages (and only that LMS)."""

from __future__ import annotations

from glow.core.security import CSP

FRAMED_PATHS = ("/learn/", "/lti/", "/accounts/", "/static/")


class LtiFrameMiddleware:
    """For a session started by an LTI launch: no X-Frame-Options, and a CSP frame-ancestors
    naming the LMS origins instead, on the learner pages. Other sessions keep DENY."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        origins = session.get("glow_lti_frame") if session is not None else None
        if origins and request.path.startswith(FRAMED_PATHS):
            response.xframe_options_exempt = True
            if "Content-Security-Policy" not in response.headers:
                # The pages' whole policy, with the LMS allowed to frame them.
                response.headers["Content-Security-Policy"] = CSP.replace(
                    "frame-ancestors 'none'", "frame-ancestors 'self' " + " ".join(origins)
                )
        return response
