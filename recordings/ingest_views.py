"""POST /internal/api/v1/recordings: the PBX hands over a finished call (SPEC.md §2.3)."""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from biztel.errors import PayloadTooLarge, Unauthorized
from biztel.models import Role
from biztel.tokens import token_from_header
from recordings import storage
from recordings.serializers import recording_data
from recordings.services import CALL_FIELDS, FILE_FIELDS, recording_ingest


def too_large(limit):
    message = f"The upload is larger than the limit of {limit} bytes."
    return PayloadTooLarge(message, messages={"upload": [message]})


class UploadLimit(FileUploadHandler):
    """Counts the file bytes as they arrive and stops at the limit, whatever the
    request's Content-Length said."""

    def __init__(self, request, limit):
        super().__init__(request)
        self.limit = limit
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            raise too_large(self.limit)
        return raw_data

    def file_complete(self, file_size):
        return None


class RecordingIngestView(APIView):
    parser_classes = [MultiPartParser]

    def post(self, request):
        token = token_from_header(request.META.get("HTTP_AUTHORIZATION"))
        if token.account.role != Role.PBX:
            raise Unauthorized()
        limit = settings.INGEST_MAX_UPLOAD_BYTES
        try:
            announced = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            announced = 0
        if announced > limit:
            raise too_large(limit)
        # Uploads go to temporary files in .incoming (swept by the purge if this worker dies),
        # never whole into memory.
        request._request.upload_handlers = [
            UploadLimit(request._request, limit),
            storage.IncomingUploadHandler(request._request),
        ]
        fields = {name: request.POST.get(name) for name in CALL_FIELDS}
        files = {name: request.FILES[name] for name in FILE_FIELDS if name in request.FILES}
        recording, created = recording_ingest(fields=fields, **files)
        return Response(recording_data(recording), status=201 if created else 200)
