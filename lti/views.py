"""LTI endpoints: JWKS, OIDC login initiation (with a cookie check), launch, deep-link picker."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from lti_tool.models import LtiLaunch
from lti_tool.utils import DjangoToolConfig, get_launch_from_request
from lti_tool.views import jwks  # noqa: F401  (served at /lti/jwks/ by lti.urls)
from pylti1p3.contrib.django import DjangoCacheDataStorage, DjangoOIDCLogin
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.exception import LtiException, OIDCException

from glow.core.errors import ApplicationError
from lti import selectors, services

COOKIE_CHECK = "glow_lti_cookie_check"
CHECKED_PARAM = "glow_cookie_checked"
NEW_WINDOW_PARAM = "lti1p3_new_window"
SESSION_FRAME = "glow_lti_frame"


def iframe_cookie(response: HttpResponse, request: HttpRequest, name: str, value: str) -> None:
    """A cookie the browser keeps inside the LMS's iframe: SameSite=None needs Secure."""
    secure = request.is_secure()
    response.set_cookie(
        name,
        value,
        max_age=300,
        secure=secure,
        httponly=True,
        samesite="None" if secure else "Lax",
    )


def refused(request: HttpRequest, reason: str, *, status: int = 403) -> HttpResponse:
    response = render(request, "lti/refused.html", {"reason": reason}, status=status)
    response.xframe_options_exempt = True
    return response


# The library's messages, in words a learner (or their LMS admin) can act on.
REASONS = (
    (
        "Can't decode id_token: Signature verification failed",
        "The launch's signature did not verify: it was not signed by the registered LMS key.",
    ),
    (
        "Can't decode id_token: Signature has expired",
        "The launch had expired before it reached Glow. Open the activity again from your LMS.",
    ),
    (
        "Registration not found",
        "This launch was not addressed to a Glow registration (unknown issuer or audience).",
    ),
    (
        "Client id not registered",
        "This launch was not addressed to Glow's client id (wrong audience).",
    ),
    ("Invalid Nonce", "This launch's nonce was not issued by Glow."),
    (
        "State not found",
        "Glow could not match this launch to its login (the browser did not send its cookie).",
    ),
    ("Missing state", "Glow could not match this launch to its login."),
    (
        "Unable to find public key",
        "The LMS's key set does not hold the key this launch was signed with.",
    ),
)


def explain(exc: Exception) -> str:
    text = str(exc)
    for prefix, reason in REASONS:
        if text.startswith(prefix):
            return reason
    return f"The launch was refused: {text}"


@method_decorator((csrf_exempt, xframe_options_exempt), name="dispatch")
class LoginView(View):
    """OIDC third-party login initiation, from GET or POST.

    First a same-origin hop that checks the browser keeps our cookies inside the LMS frame
    (browsers that block third-party cookies would lose the state cookie and fail the launch):
    if it does not, a page with a link that opens the login in a new tab, where it works.
    """

    def get(self, request, *args, **kwargs):
        return self.initiate(request, request.GET)

    def post(self, request, *args, **kwargs):
        return self.initiate(request, request.POST)

    def initiate(self, request, params):
        if not params.get("iss") or not params.get("target_link_uri"):
            return refused(request, "The LMS sent no issuer or target link.", status=400)
        login_params = {key: value for key, value in params.items() if key != CHECKED_PARAM}
        if not params.get(NEW_WINDOW_PARAM):
            if not params.get(CHECKED_PARAM):
                response = HttpResponseRedirect(
                    f"{request.path}?{urlencode({**login_params, CHECKED_PARAM: '1'})}"
                )
                iframe_cookie(response, request, COOKIE_CHECK, "1")
                return response
            if not request.COOKIES.get(COOKIE_CHECK):
                new_tab = f"{request.path}?{urlencode({**login_params, NEW_WINDOW_PARAM: '1'})}"
                response = render(request, "lti/cookies_blocked.html", {"new_tab_url": new_tab})
                response.xframe_options_exempt = True
                return response
        oidc_login = DjangoOIDCLogin(
            request, DjangoToolConfig(), launch_data_storage=DjangoCacheDataStorage()
        )
        # The id_token always comes back to our own launch URL, whatever target the request named
        # (the platform checks it against the registered redirect URIs too).
        launch_url = request.build_absolute_uri(reverse("lti:launch"))
        try:
            return oidc_login.disable_check_cookies().redirect(launch_url)
        except (LtiException, OIDCException) as exc:
            return refused(request, explain(exc), status=400)


@method_decorator((csrf_exempt, xframe_options_exempt), name="dispatch")
class LaunchView(View):
    """The id_token POST: validated by PyLTI1p3, then Glow signs the person in."""

    def post(self, request, *args, **kwargs):
        try:
            lti_launch = get_launch_from_request(request)
        except (LtiException, OIDCException) as exc:
            return refused(request, explain(exc))
        if not lti_launch.deployment.is_active:
            return refused(
                request,
                "This LMS deployment of Glow is not active yet: an administrator activates it "
                "in Glow's admin.",
            )
        try:
            if lti_launch.is_deep_link_launch:
                profile = services.deep_link_launch_accept(lti_launch=lti_launch)
                return self.signed_in(
                    request, lti_launch, profile, f"/lti/deep-link/{lti_launch.get_launch_id()}/"
                )
            if lti_launch.is_resource_launch:
                outcome = services.resource_launch_accept(lti_launch=lti_launch)
                return self.signed_in(request, lti_launch, outcome.profile, outcome.redirect_to)
        except ApplicationError as exc:  # LaunchRefused, or attempt_start refusing the entry
            return refused(request, exc.detail)
        return refused(request, "Glow does not handle this kind of LTI message.", status=400)

    def signed_in(self, request, lti_launch: LtiLaunch, profile, url: str) -> HttpResponse:
        login(request, profile.user, backend=settings.AUTHENTICATION_BACKENDS[0])
        # Pages of this session may be framed by the LMS that launched it (lti.middleware).
        request.session[SESSION_FRAME] = selectors.platform_origin(lti_launch)
        return HttpResponseRedirect(url)


@method_decorator(xframe_options_exempt, name="dispatch")
class DeepLinkView(View):
    """The instructor picks a home or practice entry; the LMS gets a signed content item."""

    def launch(self, request, launch_id):
        try:
            return get_launch_from_request(request, launch_id)
        except (LtiException, OIDCException):
            return None

    def get(self, request, launch_id):
        lti_launch = self.launch(request, launch_id)
        if lti_launch is None or not request.user.is_authenticated:
            return refused(request, "This deep-linking session has expired. Start it again.")
        profile = request.user.profile
        return render(
            request,
            "lti/deep_link.html",
            {"entries": selectors.deep_link_choices(actor=profile), "launch_id": launch_id},
        )

    def post(self, request, launch_id):
        lti_launch = self.launch(request, launch_id)
        if lti_launch is None or not request.user.is_authenticated:
            return refused(request, "This deep-linking session has expired. Start it again.")
        choice = selectors.deep_link_choice(
            actor=request.user.profile, value=request.POST.get("entry", "")
        )
        if choice is None:
            return refused(request, "Choose one of the listed activities.", status=400)
        resource = (
            DeepLinkResource()
            .set_url(request.build_absolute_uri("/lti/launch/"))
            .set_title(choice.title)
            .set_custom_params({services.CUSTOM_ENTRY: choice.value})
        )
        if choice.graded:
            from pylti1p3.lineitem import LineItem

            resource.set_lineitem(
                LineItem()
                .set_label(choice.simulation_title)
                .set_score_maximum(100)
                .set_tag(f"glow-{choice.simulation_id}")
            )
        html = lti_launch.get_message_launch().get_deep_link().output_response_form([resource])
        response = HttpResponse(html)
        response.xframe_options_exempt = True
        return response


def config(request):
    """The values an LMS administrator pastes into Canvas or Moodle (also in the README)."""
    base = request.build_absolute_uri("/").rstrip("/")
    return render(
        request,
        "lti/config.html",
        {
            "base": base,
            "title": getattr(settings, "GLOW_LTI_TITLE", "Glow"),
        },
    )
