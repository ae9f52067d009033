"""The OpenAPI description of the public API (drf-spectacular): the error body every
endpoint shares, and which endpoints the schema covers."""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation


class ErrorBodySerializer(serializers.Serializer):
    """SPEC.md §3.3: exactly these six keys on every error answer."""

    name = serializers.CharField(help_text="e.g. AuthenticationException")
    type = serializers.CharField(help_text="e.g. UNAUTHENTICATED")
    exception_id = serializers.CharField(
        allow_null=True, help_text="null except for 500, where it is also in the server log"
    )
    message = serializers.CharField()
    messages = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        allow_null=True,
        help_text="null except for validation errors: each bad field and its messages",
    )
    reason = serializers.CharField(help_text="the same as message")

    class Meta:
        ref_name = "Error"


ERROR_MEANINGS = {
    400: "A parameter is invalid (ValidateException).",
    401: "No token, or an unknown, revoked or expired one.",
    403: "A licence is off, the API is disabled, or the account may not see this.",
    404: "No such recording, or the file was purged or never produced.",
    409: "The recording is under legal hold (ConflictException).",
    416: "The Range cannot be satisfied.",
    429: "The burst limit or the month's quota is used up; see Retry-After.",
    500: "Unexpected; exception_id is in the server log.",
}


class SchemaFormatNegotiation(DefaultContentNegotiation):
    """`/public/api/schema/?format=json`: DRF's URL format override is off (format belongs to
    the download), so the schema view honours the parameter itself."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return super().select_renderer(request, renderers, format_suffix or request.query_params.get("format"))


def error_responses(*statuses):
    return {status: OpenApiResponse(ErrorBodySerializer, description=ERROR_MEANINGS[status]) for status in statuses}


def public_endpoints_only(endpoints, **kwargs):
    """drf-spectacular preprocessing hook: the schema describes /public/api/ only."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/public/api/v")]
