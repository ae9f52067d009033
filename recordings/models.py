from django.db import models
from django.db.models import Q


class ContentType(models.TextChoices):
    MONAURAL = "monaural", "monaural (mixed)"
    LEFT = "left", "left (customer)"
    RIGHT = "right", "right (operator)"


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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return self.request_id


class RecordingFile(models.Model):
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="files")
    content_type = models.CharField(max_length=10, choices=ContentType.choices)
    name = models.CharField(max_length=200, help_text="File name per the naming convention.")
    path = models.CharField(max_length=300, help_text="Relative to MEDIA_ROOT.")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    duration = models.FloatField(help_text="Seconds.")
    audio_detected = models.BooleanField(default=True, help_text="False when the file is silence only.")
    created_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Set by the purge before it deletes the file and cleared again if that fails, so a
    # download that comes in between answers 404 rather than finding the file gone.
    purging_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recording", "content_type"], name="one_file_per_content_type"),
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

    def expires_at(self, settings_row):
        """When the purge will delete it under these settings (None: kept); see recordings/purge.py."""
        from recordings.retention import expiry_for

        return expiry_for(self.content_type, self.created_at, settings_row)


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
