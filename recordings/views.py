from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema

import hashlib

from biztel.errors import NotFound, Unauthorized, ValidationFailed
from biztel.models import Role
from biztel.openapi import error_responses
from recordings import audio, naming, storage
from recordings.models import ContentType
from recordings.public import PublicApiView
from recordings.responses import file_response, opens_the_file, streamed_response
from recordings.selectors import recording_and_file

CONTENT_TYPE_MESSAGE = "選択されたmonitor log monitor typeは正しくありません"
FORMATS = ("mp3", "flac", "wav")
FORMAT_MESSAGE = "The format must be mp3, flac or wav."
MEDIA_TYPES = {"mp3": "audio/mpeg", "flac": "audio/flac", "wav": "audio/wav"}


def wav_etag(lossless_sha256):
    """The WAV's strong ETag: it is made from the FLAC, so it changes with it, yet differs
    from the FLAC's own (the SHA-256 of the FLAC's SHA-256 followed by "-wav")."""
    return hashlib.sha256(f"{lossless_sha256}-wav".encode()).hexdigest()
# What else a download reads from the request (listed so the schema, and schemathesis, cover it).
DOWNLOAD_HEADERS = [
    OpenApiParameter("Range", str, OpenApiParameter.HEADER, description="bytes=a-b, a- or -n: one range gives 206."),
    OpenApiParameter("If-Range", str, OpenApiParameter.HEADER, description="An ETag or a date: Range only if unchanged."),
    OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, description="ETags: 304 when one matches."),
    OpenApiParameter("If-Modified-Since", str, OpenApiParameter.HEADER, description="An HTTP date: 304 if not newer."),
    OpenApiParameter(
        "X-Real-IP", str, OpenApiParameter.HEADER,
        description="Set by the proxy on this machine (deploy/nginx.conf): the client's address; from others ignored.",
    ),
]


def may_download(account, recording, settings_row):
    if account.role == Role.PBX:
        return False
    if settings_row.prohibit_download_below_supervisor and account.role in (Role.SUPERVISOR, Role.OPERATOR):
        return False
    return account.may_see_group(recording.group)


class RecordingDownloadView(PublicApiView):
    """GET/HEAD /public/api/v1/monitor/<id>?content_type=monaural|left|right|stereo&format=mp3|flac|wav"""

    @extend_schema(
        operation_id="monitor_download",
        summary="Download one file of a recording",
        parameters=[
            OpenApiParameter(
                "recording_id", str, OpenApiParameter.PATH,
                description="The request ID the call action sent as {ID}, or the recording's unique ID.",
                examples=[OpenApiExample("request ID", value="21091300000468000050")],
            ),
            OpenApiParameter(
                "content_type", str, enum=ContentType.values, default=ContentType.MONAURAL,
                description=(
                    "monaural: both parties mixed; left: the customer; right: the operator; stereo: one 2-channel "
                    "file, the customer on channel 0 (left), the operator on channel 1 (right)."
                ),
            ),
            OpenApiParameter(
                "format", str, enum=FORMATS, default="mp3",
                description=(
                    "mp3: the MP3; flac: its lossless copy (kept when the setting keep_lossless was on); wav: "
                    "16-bit PCM WAV made from the lossless copy. No lossless copy: 404."
                ),
            ),
            *DOWNLOAD_HEADERS,
        ],
        responses={
            **{
                (200, media_type): OpenApiResponse(OpenApiTypes.BINARY, description="The file; Range gives 206.")
                for media_type in MEDIA_TYPES.values()
            },
            **{
                (206, media_type): OpenApiResponse(OpenApiTypes.BINARY, description="The requested byte range.")
                for media_type in MEDIA_TYPES.values()
            },
            304: OpenApiResponse(description="Not modified (If-None-Match or If-Modified-Since)."),
            **error_responses(400, 401, 403, 404, 416, 429, 500),
        },
    )
    def get(self, request, recording_id):
        call = self.admit(request)
        content_type = request.GET.get("content_type", ContentType.MONAURAL)
        if content_type not in ContentType.values:
            raise ValidationFailed(CONTENT_TYPE_MESSAGE, messages={"content_type": [CONTENT_TYPE_MESSAGE]})
        file_format = request.GET.get("format", "mp3")
        if file_format not in FORMATS:
            raise ValidationFailed(FORMAT_MESSAGE, messages={"format": [FORMAT_MESSAGE]})
        call.content_type = content_type
        if content_type != ContentType.MONAURAL and not call.settings.voice_file_separation:
            raise Unauthorized()
        # The lookup of the last second will do when the open below checks that the file is
        # still there; otherwise (HEAD, 304, nginx sending it) the database is asked.
        recording, stored = recording_and_file(recording_id, content_type, fresh=not opens_the_file(request))
        if recording is None:
            raise NotFound()
        call.recording = recording
        if not may_download(call.account, recording, call.settings):
            raise Unauthorized()
        if stored is None or (file_format != "mp3" and not stored.lossless_sha256):
            raise NotFound()
        try:
            if file_format == "mp3":
                return file_response(
                    request,
                    relative_path=stored.path,
                    name=stored.name,
                    size=stored.size,
                    sha256=stored.sha256,
                    modified=stored.created_at,
                )
            if file_format == "flac":
                return file_response(
                    request,
                    relative_path=stored.lossless_path,
                    name=naming.with_extension(stored.name, "flac"),
                    size=stored.lossless_size,
                    sha256=stored.lossless_sha256,
                    modified=stored.created_at,
                    content_type=MEDIA_TYPES["flac"],
                )
            return wav_response(request, stored)
        except FileNotFoundError:
            # Purged or deleted since the lookup: that is a 404. A file missing while
            # its row says stored is an inconsistency, left to answer 500.
            if recording_and_file(recording_id, content_type, fresh=True)[1] is None:
                raise NotFound() from None
            raise

    head = get


def wav_response(request, stored):
    """The WAV, made from the FLAC copy while it is sent (there is no stored WAV, so Django
    sends it itself, also behind nginx)."""

    def open_body():
        wav = audio.WavFromFlac(storage.open_for_read(stored.lossless_path))
        return wav.size, wav.chunks, wav.close

    return streamed_response(
        request,
        name=naming.with_extension(stored.name, "wav"),
        etag=wav_etag(stored.lossless_sha256),
        modified=stored.created_at,
        content_type=MEDIA_TYPES["wav"],
        open_body=open_body,
    )
