from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from biztel import config
from recordings.models import Recording, RecordingFile
from recordings.selectors import recording_minutes_in_month


class RecordingFileInline(admin.TabularInline):
    model = RecordingFile
    extra = 0
    can_delete = False
    fields = (
        "content_type", "name", "size", "sha256", "duration", "audio_detected", "lossless", "created_at", "expires",
        "deleted_at",
    )
    readonly_fields = fields

    @admin.display(description="lossless copy (FLAC)")
    def lossless(self, obj):
        return f"{obj.lossless_size} bytes, SHA-256 {obj.lossless_sha256}" if obj.lossless_sha256 else "-"

    @admin.display(description="expires")
    def expires(self, obj):
        return obj.expires_at(config.current()) or "kept"

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Recording)
class RecordingAdmin(admin.ModelAdmin):
    """Recordings are written by the ingest only; admin shows them and the month's recording time."""

    list_display = (
        "request_id", "unique_id", "started_at", "caller", "callee", "side",
        "external_number", "extension", "tel", "group", "duration", "file_types",
    )
    list_filter = (("started_at", admin.DateFieldListFilter), "side", "group", "files__content_type")
    search_fields = ("request_id", "unique_id", "caller", "callee", "tel", "external_number", "extension")
    date_hierarchy = "started_at"
    inlines = [RecordingFileInline]
    readonly_fields = [f.name for f in Recording._meta.fields]
    actions = None

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("files")

    @admin.display(description="files")
    def file_types(self, obj):
        return ", ".join(f.content_type for f in obj.files.all() if f.deleted_at is None) or "-"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting the row would orphan the files on disk; the purge removes files.
        return False

    def changelist_view(self, request, extra_context=None):
        this_month = timezone.localdate().replace(day=1)
        last_month = (this_month - timedelta(days=1)).replace(day=1)
        minutes = [
            (month, recording_minutes_in_month(year=month.year, month=month.month)) for month in (this_month, last_month)
        ]
        return super().changelist_view(request, {**(extra_context or {}), "recording_minutes": minutes})
