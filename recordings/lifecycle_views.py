"""One recording's metadata, its delete and its legal hold (SPEC.md §8).

The checks are the download's (recordings/views.py): admission in the error table's
order, then the recording (404), then whether the account may see it (403); changing
a recording also takes an administrator token (the same 403 row otherwise).
"""

from django.http import HttpResponse, JsonResponse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers

from biztel.errors import NotFound, Unauthorized
from biztel.models import Role
from biztel.openapi import error_responses
from recordings.lifecycle import Actor, recording_delete, recording_hold_set
from recordings.models import EndCause, Status
from recordings.public import PublicApiView
from recordings.selectors import recording_by_id
from recordings.serializers import recording_data
from recordings.views import may_download

RECORDING_ID = OpenApiParameter(
    "recording_id", str, OpenApiParameter.PATH,
    description="The request ID the call action sent as {ID}, or the recording's unique ID.",
    examples=[OpenApiExample("request ID", value="21091300000468000050")],
)

RECORDING_SCHEMA = inline_serializer(
    "Recording",
    fields={
        "request_id": serializers.CharField(),
        "unique_id": serializers.CharField(),
        "started_at": serializers.CharField(help_text="Call start, local time, YYYY-MM-DD HH:MM:SS."),
        "caller": serializers.CharField(),
        "callee": serializers.CharField(),
        "side": serializers.CharField(),
        "external_number": serializers.CharField(),
        "extension": serializers.CharField(),
        "tel": serializers.CharField(),
        "group": serializers.CharField(),
        "duration": serializers.FloatField(),
        "end_cause": serializers.ChoiceField(choices=["", *EndCause.values], help_text="Empty when the PBX gave none."),
        "status": serializers.ChoiceField(choices=Status.values),
        "deleted_at": serializers.DateTimeField(allow_null=True),
        "legal_hold": serializers.BooleanField(),
        "files": serializers.DictField(
            child=serializers.DictField(allow_null=True),
            help_text="Per content type: name, bytes, sha256, duration, audio_detected, exists (null when never produced).",
        ),
    },
)

CHANGED = OpenApiResponse(description="Done (also when it already was). Counts 1 request and 1 response object.")


def visible_recording(view, request, recording_id, *, change=False):
    """The recording a PublicApiView answers about, after the download's checks in order."""
    call = view.admit(request)
    account = call.account
    recording = recording_by_id(recording_id)
    if recording is None:
        raise NotFound()
    call.recording = recording
    if not may_download(account, recording, call.settings) or (change and account.role != Role.ADMINISTRATOR):
        raise Unauthorized()
    return recording


def api_actor(view):
    return Actor(account=view.call.account, token=view.call.token, via="api")


class RecordingView(PublicApiView):
    """GET/DELETE /public/api/v1/recordings/<id>"""

    @extend_schema(
        operation_id="recording_retrieve",
        summary="One recording's metadata, with its status, legal hold and end cause",
        parameters=[RECORDING_ID],
        responses={
            200: OpenApiResponse(RECORDING_SCHEMA, description="Counts 1 request and 1 response object."),
            **error_responses(401, 403, 404, 429, 500),
        },
    )
    def get(self, request, recording_id):
        recording = visible_recording(self, request, recording_id)
        return JsonResponse(recording_data(recording), json_dumps_params={"ensure_ascii": False})

    @extend_schema(
        operation_id="recording_delete",
        summary="Delete every file of a recording, keeping its metadata (administrator tokens)",
        parameters=[RECORDING_ID],
        responses={204: CHANGED, **error_responses(401, 403, 404, 409, 429, 500)},
    )
    def delete(self, request, recording_id):
        recording = visible_recording(self, request, recording_id, change=True)
        recording_delete(recording=recording, actor=api_actor(self))
        return HttpResponse(status=204)


class RecordingHoldView(PublicApiView):
    """PUT/DELETE /public/api/v1/recordings/<id>/hold"""

    @extend_schema(
        operation_id="recording_hold_place",
        summary="Place a recording on legal hold: its files are never purged or deleted (administrator tokens)",
        parameters=[RECORDING_ID],
        request=None,
        responses={204: CHANGED, **error_responses(401, 403, 404, 429, 500)},
    )
    def put(self, request, recording_id):
        recording = visible_recording(self, request, recording_id, change=True)
        recording_hold_set(recording=recording, held=True, actor=api_actor(self))
        return HttpResponse(status=204)

    @extend_schema(
        operation_id="recording_hold_lift",
        summary="Lift a recording's legal hold (administrator tokens)",
        parameters=[RECORDING_ID],
        responses={204: CHANGED, **error_responses(401, 403, 404, 429, 500)},
    )
    def delete(self, request, recording_id):
        recording = visible_recording(self, request, recording_id, change=True)
        recording_hold_set(recording=recording, held=False, actor=api_actor(self))
        return HttpResponse(status=204)

