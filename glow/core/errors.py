"""Domain errors and the one exception handler that renders every API error in the same shape."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

# A lost or refused database connection (a restart, failover, too many clients): the request
# may succeed if retried, so it answers 503, not 500.
DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


class ApplicationError(Exception):
    """A request the domain refuses: bad input that passed the serializer (400 by default)."""

    status_code = 400
    code = "invalid"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        fields: dict | None = None,
        extra: dict | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.code
        self.fields = fields or {}
        self.extra = extra or {}
        if status_code is not None:
            self.status_code = status_code


class NotFound(ApplicationError):
    """Missing, or not visible to this actor: both answer the same 404."""

    status_code = 404
    code = "not_found"


class PermissionDenied(ApplicationError):
    status_code = 403
    code = "permission_denied"


class ConflictError(ApplicationError):
    """A stale version or an illegal state transition."""

    status_code = 409
    code = "conflict"


class StateError(ApplicationError):
    """A state machine refuses the operation in the row's current state."""

    status_code = 422
    code = "invalid_state"


def error_body(detail: str, code: str, fields: dict | None = None, **extra: Any) -> dict:
    return {"detail": detail, "code": code, "fields": fields or {}, **extra}


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _first_message(fields: dict) -> str:
    for name, messages in fields.items():
        message = messages[0] if isinstance(messages, list) and messages else messages
        if isinstance(message, dict):
            return f"{name}: {_first_message(message)}"
        if name == "non_field_errors":
            return str(message)
        return f"{name}: {message}"
    return "Invalid input."


def _unavailable_body() -> dict:
    return error_body(
        "The service is briefly unavailable (its database cannot be reached); try again shortly.",
        "service_unavailable",
    )


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DATABASE_ERRORS):
        logger.warning("Database unavailable: %s", exc)
        return Response(
            _unavailable_body(), status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )
    if isinstance(exc, ApplicationError):
        body = error_body(exc.detail, exc.code, exc.fields, **exc.extra)
        return Response(body, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("The request body is too large.", "request_too_large"), status=413
        )
    if isinstance(exc, DjangoValidationError):
        fields = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        exc = drf.ValidationError(fields)
    elif isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf.ValidationError):
        data = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = _flatten(data)
        response.data = error_body(_first_message(fields), "invalid", fields)
        return response
    code = exc.get_codes() if isinstance(exc, drf.APIException) else "error"
    if not isinstance(code, str):
        code = "error"
    detail = exc.detail if isinstance(exc, drf.APIException) else str(exc)
    extra = {}
    if isinstance(exc, drf.Throttled) and exc.wait is not None:
        extra["retry_after"] = int(exc.wait)
    response.data = error_body(str(detail), code, **extra)
    return response


@csrf_exempt  # an unknown op answers the JSON 404 for every method, never a CSRF page
def api_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("Not found.", "not_found"), status=404)


def api_server_error(request) -> JsonResponse:
    return JsonResponse(
        error_body("The server could not complete the request.", "server_error"), status=500
    )


def service_unavailable(request=None) -> JsonResponse:
    response = JsonResponse(_unavailable_body(), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def database_unavailable() -> bool:
    """Inside an except block (the 500 handler): is the exception a lost database?"""
    return isinstance(sys.exc_info()[1], DATABASE_ERRORS)


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """Views outside DRF (staff pages, admin) that lose the database answer the same 503."""

    def process_exception(self, request, exception):
        if isinstance(exception, DATABASE_ERRORS):
            logger.warning("Database unavailable: %s", exception)
            return service_unavailable(request)
        return None
