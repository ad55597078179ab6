"""A real LTI 1.3 platform for tests, built on the `lti1p3platform` package (not written here).

The package signs launches, builds the OIDC preflight URL, validates the tool's client
assertion and issues access tokens. Around it, a small HTTP server in a thread serves what a
platform serves to a tool: its JWKS, the token endpoint, AGS line items and scores, and the NRPS
membership list, and records every score it receives.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from django.core.management import call_command
from jwcrypto.jwk import JWK
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request
from lti_tool.models import Key, LtiDeployment, LtiRegistration

from lti.models import RegistrationBinding

AGS_SCOPES = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
]


def rsa_pair() -> tuple[str, str]:
    key = JWK.generate(kty="RSA", size=2048)
    return (
        key.export_to_pem().decode(),
        key.export_to_pem(private_key=True, password=None).decode(),
    )


class PlatformConfig(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, **kwargs):
        self._registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs):
        return self._registration


class OIDCLogin(OIDCLoginAbstract):
    def set_lti_message_hint(self, **kwargs):
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url):
        return url


class PlainRequest(Request):
    """The browser's request to the platform's auth endpoint, as lti1p3platform reads it."""

    def build_metadata(self, request):
        return {
            "method": "GET",
            "form_data": {},
            "json": None,
            "get_data": request,
            "headers": {},
            "content_type": None,
            "path": "/auth",
        }


class MessageLaunch(LTIAdvantageMessageLaunchAbstract):
    def render_launch_form(self, launch_data, **kwargs):
        return launch_data  # the auto-submitting form's fields: id_token, state, launch_url


@dataclass
class LineItem:
    id: str
    body: dict
    scores: list[dict] = field(default_factory=list)


class LmsPlatform:
    """Start with `with LmsPlatform(tool_base=...) as platform:`; `platform.url` is its issuer."""

    client_id = "glow-tool-client"
    deployment_id = "deployment-1"

    def __init__(self, *, tool_base: str) -> None:
        self.tool_base = tool_base.rstrip("/")
        self.public_key, self.private_key = rsa_pair()
        self.line_items: dict[str, LineItem] = {}
        self.token_requests = 0
        self.down = False  # answer 503 everywhere, like an LMS in maintenance
        self.members: list[dict] = []
        self.frame_url = ""  # what GET /course embeds in an iframe, as a course page does
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.registration = (
            Registration()
            .set_iss(self.url)
            .set_client_id(self.client_id)
            .set_deployment_id(self.deployment_id)
            .set_oidc_login_url(f"{self.tool_base}/lti/login/")
            .set_launch_url(f"{self.tool_base}/lti/launch/")
            .set_deeplink_launch_url(f"{self.tool_base}/lti/launch/")
            .set_platform_public_key(self.public_key)
            .set_platform_private_key(self.private_key)
            .set_tool_key_set_url(f"{self.tool_base}/lti/jwks/")
        )
        self.config = PlatformConfig(registration=self.registration)

    # -- the tool's registration values (what an admin pastes into Glow) --

    @property
    def auth_url(self) -> str:
        return f"{self.url}/auth"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def keyset_url(self) -> str:
        return f"{self.url}/jwks"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    # -- launching --

    def preflight_url(self, *, user_id: str, hint: str = "resource-link-1") -> str:
        login = OIDCLogin(None, self.config)
        login.set_lti_message_hint(hint=hint)
        return login.initiate_login(user_id)

    def launch(
        self,
        auth_params: dict,
        *,
        user: dict,
        roles: list[str],
        custom: dict | None = None,
        context_id: str = "course-1",
        resource_link_id: str = "resource-link-1",
        deep_link: bool = False,
    ) -> dict:
        """The platform's answer to the tool's auth request: the signed launch form fields."""
        launch = MessageLaunch(PlainRequest(auth_params), self.config)
        launch.set_user_data(
            user["sub"],
            roles,
            full_name=user.get("name"),
            email_address=user.get("email"),
        )
        launch.set_launch_context_claim(
            context_id, context_title="Teaching 101", context_label="T101"
        )
        if deep_link:
            launch.set_dl(deep_link_return_url=f"{self.url}/deep-link-return", title="Glow")
        else:
            launch.set_resource_link_claim(resource_link_id, title="Hard conversation")
        if custom:
            launch.set_custom_parameters_claim(custom)
        launch.set_ags(lineitems_url=f"{self.url}/lineitems")
        launch.set_nrps(context_memberships_url=f"{self.url}/memberships")
        return launch.lti_launch()

    def sign(self, payload: dict, *, private_key: str | None = None) -> str:
        """Sign a launch body as this platform (or with another key: a forged signature)."""
        headers = {"kid": self.registration.get_kid()}
        return Registration.encode_and_sign(payload, private_key or self.private_key, headers)

    def scores(self) -> list[dict]:
        with self._lock:
            return [score for item in self.line_items.values() for score in item.scores]

    # -- the HTTP side --

    def _authorized(self, handler) -> bool:
        scheme, _, token = handler.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        try:
            return bool(self.config.validate_token(token))
        except Exception:
            return False

    def _handler(self):
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body=None, content_type="application/json"):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def read(self):
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length).decode()

            def do_GET(self):
                path = urlsplit(self.path).path
                if platform.down:
                    return self.answer(503, {"error": "maintenance"})
                if path == "/jwks":
                    return self.answer(200, platform.config.get_jwks())
                if path == "/course" and platform.frame_url:  # the LMS page embedding the tool
                    page = (
                        "<!doctype html><html lang=en><title>Teaching 101</title><h1>Teaching 101"
                        f'</h1><iframe title="Glow activity" src="{platform.frame_url}" '
                        'width="900" height="500"></iframe></html>'
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return None
                if not platform._authorized(self):
                    return self.answer(401, {"error": "invalid token"})
                if path == "/lineitems":
                    with platform._lock:
                        items = [item.body for item in platform.line_items.values()]
                    return self.answer(
                        200, items, "application/vnd.ims.lis.v2.lineitemcontainer+json"
                    )
                if path == "/memberships":
                    return self.answer(
                        200,
                        {
                            "id": f"{platform.url}/memberships",
                            "context": {"id": "course-1"},
                            "members": platform.members,
                        },
                        "application/vnd.ims.lti-nrps.v2.membershipcontainer+json",
                    )
                return self.answer(404, {"error": "not found"})

            def do_POST(self):
                path = urlsplit(self.path).path
                body = self.read()
                if platform.down:
                    return self.answer(503, {"error": "maintenance"})
                if path == "/token":
                    platform.token_requests += 1
                    try:
                        token = platform.config.get_access_token(dict(parse_qsl(body)))
                    except Exception as exc:
                        return self.answer(400, {"error": str(exc)})
                    return self.answer(200, dict(token))
                if not platform._authorized(self):
                    return self.answer(401, {"error": "invalid token"})
                data = json.loads(body or "{}")
                if path == "/lineitems":
                    with platform._lock:
                        item_id = f"{platform.url}/lineitems/{len(platform.line_items) + 1}"
                        item = LineItem(id=item_id, body={**data, "id": item_id})
                        platform.line_items[item_id] = item
                    return self.answer(201, item.body, "application/vnd.ims.lis.v2.lineitem+json")
                if path.startswith("/lineitems/") and path.endswith("/scores"):
                    item_id = f"{platform.url}{path.removesuffix('/scores')}"
                    with platform._lock:
                        item = platform.line_items.get(item_id)
                        if item is None:
                            return self.answer(404, {"error": "no such line item"})
                        item.scores.append({**data, "received_at": time.time()})
                    return self.answer(200, {})
                return self.answer(404, {"error": "not found"})

        return Handler


def register(platform: LmsPlatform, organization, *, tool_key_set: bool = True):
    """What an administrator does in Glow's admin, and the platform's copy of Glow's JWKS."""
    call_command("lti_keys")
    registration = LtiRegistration.objects.create(
        name="Test LMS",
        issuer=platform.url,
        client_id=platform.client_id,
        auth_url=platform.auth_url,
        token_url=platform.token_url,
        keyset_url=platform.keyset_url,
    )
    LtiDeployment.objects.create(
        registration=registration, deployment_id=platform.deployment_id, is_active=True
    )
    RegistrationBinding.objects.create(registration=registration, organization=organization)
    if tool_key_set:  # the live test lets the platform fetch /lti/jwks/ itself
        platform.registration.set_tool_key_set(Key.objects.as_jwks())
    return registration
