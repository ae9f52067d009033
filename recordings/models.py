from django.conf import settings
from django.db import models
from django.db.models import Q

from recordings import naming


class ContentType(models.TextChoices):
    MONAURAL = "monaural", "monaural (mixed)"
    LEFT = "left", "left (customer)"
    RIGHT = "right", "right (operator)"
    STEREO = "stereo", "stereo (customer left, operator right)"


class EndCause(models.TextChoices):
    """Why the recording ended, as the PBX says (Aculab's termination causes, SPEC.md §8)."""

    HANGUP = "hangup"
    SILENCE = "silence"
    MAX_LENGTH = "max_length"
    MAX_SIZE = "max_size"
    DTMF = "dtmf"
    TIMEOUT = "timeout"
    ABORTED = "aborted"
    ERROR = "error"


class Status(models.TextChoices):
    COMPLETED = "completed"
    ABSENT = "absent", "absent (no file has audio)"
    DELETED = "deleted"


class Side(models.TextChoices):
    SRC = "SRC", "SRC"
    DST = "DST", "DST"


class Recording(models.Model):
    request_id = models.CharField(max_length=20, unique=True)
    unique_id = models.CharField(max_length=64, unique=True)
    started_at = models.DateTimeField(db_index=True, help_text="Call start.")
    caller = models.CharField(max_length=32)
    callee = models.CharField(max_length=32)
    side = models.CharField(max_length=3, choices=Side.choices)
    external_number = models.CharField(max_length=32, blank=True)
    extension = models.CharField(max_length=32, blank=True)
    tel = models.CharField("customer number", max_length=32, blank=True)
    group = models.CharField(max_length=100, blank=True, db_index=True)
    duration = models.FloatField(default=0, help_text="Seconds.")
    end_cause = models.CharField(max_length=20, choices=EndCause.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Its files were deleted on request; the purge removes the row later."
    )
    legal_hold = models.BooleanField(default=False, help_text="Its files are never purged or deleted.")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return self.request_id

    @property
    def status(self):
        """SPEC.md §8: deleted, absent (no file of the call has audio) or completed."""
        if self.deleted_at is not None:
            return Status.DELETED
        if not any(f.audio_detected for f in self.files.all()):
            return Status.ABSENT
        return Status.COMPLETED


class RecordingFile(models.Model):
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="files")
    content_type = models.CharField(max_length=10, choices=ContentType.choices)
    name = models.CharField(max_length=200, help_text="File name per the naming convention.")
    path = models.CharField(max_length=300, help_text="Relative to MEDIA_ROOT.")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    duration = models.FloatField(help_text="Seconds.")
    audio_detected = models.BooleanField(default=True, help_text="False when the file is silence only.")
    lossless_size = models.BigIntegerField(null=True, blank=True, help_text="Bytes of the FLAC copy; empty: none.")
    lossless_sha256 = models.CharField(max_length=64, null=True, blank=True, help_text="SHA-256 of the FLAC copy.")
    created_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Set by the purge before it deletes the file and cleared again if that fails, so a
    # download that comes in between answers 404 rather than finding the file gone.
    purging_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recording", "content_type"], name="one_file_per_content_type"),
            # A stored file is never replaced by another call's (recordings/services.py refuses first).
            models.UniqueConstraint(fields=["path"], name="one_file_per_path"),
        ]
        indexes = [
            # The purge decides what is due from the storing time and the retention in force when it
            # runs (recordings/purge.py), walking this index per content type.
            models.Index(
                fields=["content_type", "created_at"], condition=Q(deleted_at__isnull=True), name="file_stored_age_idx"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def exists(self):
        return self.deleted_at is None

    @property
    def lossless_path(self):
        """Where the FLAC copy is stored, when there is one (lossless_sha256 set)."""
        return naming.lossless_path(self.path)

    @property
    def stored_paths(self):
        """Every stored object of this file: the lossless copy (same retention) and the MP3.
        The MP3 goes last: a purge or delete stopped in between leaves the row as it was,
        and the next run ends it."""
        return ([self.lossless_path] if self.lossless_sha256 else []) + [self.path]


class DayArchive(models.Model):
    """The bulk-download archive of one day's files (SPEC.md §2.5)."""

    day = models.DateField(unique=True)
    path = models.CharField(max_length=300, help_text="Relative to MEDIA_ROOT.")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    file_count = models.PositiveIntegerField()
    built_at = models.DateTimeField(help_text="The purge deletes it bulk_retention_days after this.")
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-day"]

    def __str__(self):
        return f"archive {self.day}"


class AuditEntry(models.Model):
    """One delete, legal hold or lift of a recording: who, when, what (SPEC.md §8).

    The IDs are kept as text so the entry still says which call it was after the purge
    has removed the recording's row."""

    class Action(models.TextChoices):
        DELETE = "delete", "audio deleted"
        HOLD = "hold", "legal hold placed"
        LIFT = "lift", "legal hold lifted"

    at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    recording = models.ForeignKey(Recording, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit")
    request_id = models.CharField(max_length=20, db_index=True)
    unique_id = models.CharField(max_length=64)
    account = models.ForeignKey(
        "biztel.Account", null=True, blank=True, on_delete=models.SET_NULL, help_text="The token's account or the admin user."
    )
    username = models.CharField(max_length=150, help_text="Kept when the account is removed.")
    token = models.ForeignKey("biztel.ApiToken", null=True, blank=True, on_delete=models.SET_NULL)
    via = models.CharField(max_length=10, choices=[("api", "public API"), ("admin", "admin")])
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name = "recording audit entry"
        verbose_name_plural = "recording audit trail"

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.get_action_display()} {self.request_id} by {self.username}"


class AccessLogEntry(models.Model):
    """One request to the public API: who fetched what, and what they got."""

    at = models.DateTimeField(db_index=True)
    token = models.ForeignKey("biztel.ApiToken", null=True, blank=True, on_delete=models.SET_NULL)
    account = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    recording = models.ForeignKey(Recording, null=True, blank=True, on_delete=models.SET_NULL)
    # Who fetched a call must stay known after the purge removes a deleted recording's row.
    recording_request_id = models.CharField("request ID", max_length=20, blank=True, db_index=True)
    content_type = models.CharField(max_length=20, blank=True)
    status = models.PositiveSmallIntegerField()
    bytes_sent = models.BigIntegerField(default=0)
    response_objects = models.PositiveIntegerField(default=0, help_text="Quota objects this request consumed.")
    client_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        db_table = "biztel_accesslogentry"  # the name it had when the platform held it
        ordering = ["-at"]
        verbose_name = "access log entry"
        verbose_name_plural = "access log"

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.method} {self.path} {self.status}"
