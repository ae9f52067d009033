from datetime import timedelta

from django.contrib import admin, messages
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from biztel import config
from biztel.admin import ReadOnlyAdmin
from biztel.errors import Conflict
from recordings.lifecycle import Actor, recording_delete, recording_hold_set
from recordings.models import AccessLogEntry, AuditEntry, Recording, RecordingFile
from recordings.retention import file_expires_at
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
        return file_expires_at(obj, config.current()) or "kept"

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Recording)
class RecordingAdmin(admin.ModelAdmin):
    """Recordings are written by the ingest only; admin shows them and the month's recording time."""

    list_display = (
        "request_id", "unique_id", "started_at", "caller", "callee", "side",
        "external_number", "extension", "tel", "group", "duration", "end_cause", "status", "legal_hold", "file_types",
    )
    list_filter = (
        ("started_at", admin.DateFieldListFilter), "side", "group", "files__content_type", "end_cause", "legal_hold",
        ("deleted_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("request_id", "unique_id", "caller", "callee", "tel", "external_number", "extension")
    date_hierarchy = "started_at"
    inlines = [RecordingFileInline]
    readonly_fields = [f.name for f in Recording._meta.fields]
    actions = ["place_hold", "lift_hold", "delete_audio"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("files")

    @admin.display(description="files")
    def file_types(self, obj):
        return ", ".join(f.content_type for f in obj.files.all() if f.deleted_at is None) or "-"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting the row would orphan the files on disk; "Delete the audio" keeps the metadata.
        return False

    @staticmethod
    def _actor(request):
        return Actor(account=request.user, via="admin")

    @admin.action(description="Place on legal hold")
    def place_hold(self, request, queryset):
        for recording in queryset:
            recording_hold_set(recording=recording, held=True, actor=self._actor(request))
        self.message_user(request, f"{len(queryset)} recording(s) on legal hold.")

    @admin.action(description="Lift legal hold")
    def lift_hold(self, request, queryset):
        for recording in queryset:
            recording_hold_set(recording=recording, held=False, actor=self._actor(request))
        self.message_user(request, f"Legal hold lifted from {len(queryset)} recording(s).")

    @admin.action(description="Delete the audio (every file; the metadata is kept as deleted)")
    def delete_audio(self, request, queryset):
        deleted, held = 0, []
        for recording in queryset:
            try:
                recording_delete(recording=recording, actor=self._actor(request))
                deleted += 1
            except Conflict:
                held.append(recording.request_id)
        self.message_user(request, f"Audio of {deleted} recording(s) deleted.")
        if held:
            self.message_user(request, f"Under legal hold, not deleted: {', '.join(held)}", messages.ERROR)

    def changelist_view(self, request, extra_context=None):
        this_month = timezone.localdate().replace(day=1)
        last_month = (this_month - timedelta(days=1)).replace(day=1)
        minutes = [
            (month, recording_minutes_in_month(year=month.year, month=month.month)) for month in (this_month, last_month)
        ]
        return super().changelist_view(request, {**(extra_context or {}), "recording_minutes": minutes})


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Every delete, legal hold and lift of a recording; written by recordings/lifecycle.py only."""

    list_display = ("at", "action", "request_id", "unique_id", "username", "token", "via", "detail")
    list_filter = ("action", ("at", admin.DateFieldListFilter), "via")
    search_fields = ("request_id", "unique_id", "username")
    date_hierarchy = "at"
    list_select_related = ("token", "token__account")
    readonly_fields = [f.name for f in AuditEntry._meta.fields]
    actions = None


@admin.register(AccessLogEntry)
class AccessLogAdmin(ReadOnlyAdmin):
    list_display = (
        "at", "account", "token", "method", "recording_request_id", "content_type", "status", "bytes_sent", "client_ip",
    )
    list_filter = ("status", "content_type", "method", ("at", admin.DateFieldListFilter))
    search_fields = ("recording_request_id", "recording__unique_id", "account__username", "client_ip", "path")
    date_hierarchy = "at"
    list_select_related = ("account", "token", "recording")
    actions = None

    def changelist_view(self, request, extra_context=None):
        # Usage per day and token, for the rows the filters leave.
        response = super().changelist_view(request, extra_context)
        try:
            queryset = response.context_data["cl"].queryset
        except (AttributeError, KeyError):
            return response
        response.context_data["usage_by_day_and_token"] = (
            queryset.annotate(day=TruncDate("at"))
            .values("day", "token__name", "token__prefix", "account__username")
            .annotate(requests=Count("id"), objects=Sum("response_objects"))
            .order_by("-day")[:60]
        )
        return response
