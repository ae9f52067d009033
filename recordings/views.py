from biztel.downloads import file_response
from biztel.errors import NotFound, Unauthorized, ValidationFailed
from biztel.models import Role
from biztel.public import PublicApiView
from recordings.models import ContentType
from recordings.selectors import recording_and_file

CONTENT_TYPE_MESSAGE = "選択されたmonitor log monitor typeは正しくありません"


def may_download(account, recording, settings_row):
    if account.role == Role.PBX:
        return False
    if settings_row.prohibit_download_below_supervisor and account.role in (Role.SUPERVISOR, Role.OPERATOR):
        return False
    return account.may_see_group(recording.group)


class RecordingDownloadView(PublicApiView):
    """GET/HEAD /public/api/v1/monitor/<id>?content_type=monaural|left|right"""

    def get(self, request, recording_id):
        account = self.admit(request)
        content_type = request.GET.get("content_type", ContentType.MONAURAL)
        if content_type not in ContentType.values:
            raise ValidationFailed(CONTENT_TYPE_MESSAGE, messages={"content_type": [CONTENT_TYPE_MESSAGE]})
        self.log_content_type = content_type
        if content_type != ContentType.MONAURAL and not self.system.voice_file_separation:
            raise Unauthorized()
        recording, stored = recording_and_file(recording_id, content_type)
        if recording is None:
            raise NotFound()
        self.log_recording = recording
        if not may_download(account, recording, self.system):
            raise Unauthorized()
        if stored is None:
            raise NotFound()
        return file_response(
            request,
            relative_path=stored.path,
            name=stored.name,
            size=stored.size,
            sha256=stored.sha256,
            modified=stored.created_at,
        )

    head = get
