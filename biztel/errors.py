"""The error contract of SPEC.md §3.3: one exception per row family, one renderer.

Every JSON error answer of the APIs has exactly six keys:
name, type, exception_id, message, messages, reason.
"""

import logging
import sys
import uuid

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions

log = logging.getLogger("biztel.api")


class ApiError(Exception):
    status = 500
    name = "SystemException"
    type = "INTERNAL_SERVER_ERROR"
    message = "System error."

    def __init__(self, message=None, *, messages=None, headers=None):
        super().__init__(message or self.message)
        if message:
            self.message = message
        self.messages = messages
        self.headers = headers or {}


class InvalidRequest(ApiError):
    status = 401
    name = "AuthenticationException"
    type = "UNAUTHENTICATED"
    message = "Unauthenticated: method=personal_token, cause=invalid request"


class InvalidToken(InvalidRequest):
    message = "Unauthenticated: method=personal_token, cause=invalid token."


class BurstLimitExceeded(ApiError):
    status = 429
    name = "AuthenticationException"
    type = "REQUEST_BURST_LIMIT_EXCEEDED"
    message = "exceptions.AccessLimitException."


class MonthlyLimitExceeded(BurstLimitExceeded):
    type = "MONTHLY_LIMIT_EXCEEDED"


class NotContracted(ApiError):
    """A licence is off: the row family named AuthenticationException/FORBIDDEN."""

    status = 403
    name = "AuthenticationException"
    type = "FORBIDDEN"
    message = "This action is unauthorized."


class Unauthorized(NotContracted):
    name = "AuthorizationException"


class ValidationFailed(ApiError):
    status = 400
    name = "ValidateException"
    type = "VALIDATE_ERROR"
    message = "The given data was invalid."


class PayloadTooLarge(ValidationFailed):
    status = 413


class NotFound(ApiError):
    status = 404
    name = "EntityNotFoundException"
    type = "NOT_FOUND"
    message = "対象が存在しません"


class MethodNotAllowed(ApiError):
    status = 405
    name = "MethodNotAllowedException"
    type = "METHOD_NOT_ALLOWED"
    message = "Method not allowed."


class Conflict(ApiError):
    status = 409
    name = "ConflictException"
    type = "CONFLICT"
    message = "A recording with this unique_id already exists with another request_id."


def error_body(error, exception_id=None):
    return {
        "name": error.name,
        "type": error.type,
        "exception_id": exception_id,
        "message": error.message,
        "messages": error.messages,
        "reason": error.message,
    }


def error_response(error):
    exception_id = None
    if error.status == 500:
        exception_id = uuid.uuid4().hex
        cause = error.__cause__ or error
        # one line with the id, then the traceback: what an operator greps for
        log.error("exception_id=%s %s", exception_id, " ".join(str(cause).split()), exc_info=cause)
    response = JsonResponse(error_body(error, exception_id), status=error.status, json_dumps_params={"ensure_ascii": False})
    for header, value in error.headers.items():
        response[header] = value
    return response


_SUSPICIOUS = {
    TooManyFieldsSent: "Too many form fields or query parameters.",
    TooManyFilesSent: "Too many files.",
}


def as_api_error(exc):
    """Map anything raised inside an API view to one of the contract's errors."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return MethodNotAllowed()
    if isinstance(exc, (drf_exceptions.NotFound, Http404)):
        return NotFound()
    if isinstance(exc, drf_exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return ValidationFailed(messages={k: [str(m) for m in v] if isinstance(v, list) else [str(v)] for k, v in detail.items()})
    if isinstance(exc, (drf_exceptions.ParseError, drf_exceptions.UnsupportedMediaType)):
        return ValidationFailed(messages={"non_field_errors": [str(exc.detail)]})
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge("The request body is too large.", messages={"upload": ["The request body is too large."]})
    if isinstance(exc, SuspiciousOperation):
        return ValidationFailed(messages={"request": [_SUSPICIOUS.get(type(exc), "Bad request.")]})
    error = ApiError()
    error.__cause__ = exc
    return error


def drf_exception_handler(exc, context):
    return error_response(as_api_error(exc))


def not_found_view(request, *args, **kwargs):
    """Unknown paths under the APIs answer with the same six keys."""
    return error_response(NotFound())


def _is_api(request):
    return request.path.startswith(("/public/api/", "/internal/api/"))


def bad_request_view(request, exception=None):
    """handler400: a bad Host header or the like, answered in the contract's shape under the APIs."""
    if _is_api(request):
        if isinstance(exception, SuspiciousOperation):
            return error_response(as_api_error(exception))
        return error_response(ValidationFailed(messages={"request": ["Bad request."]}))
    return defaults.bad_request(request, exception)


def server_error_view(request):
    """handler500: an error outside the API views (middleware), still without internals."""
    if _is_api(request):
        error = ApiError()
        # Django calls this while it handles the exception: log its id with that traceback.
        error.__cause__ = sys.exc_info()[1]
        return error_response(error)
    return defaults.server_error(request)
