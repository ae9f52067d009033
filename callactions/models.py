import uuid

from django.db import models


class Event(models.Model):
    """Something call actions react to, written in the same transaction as its cause."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=40, default="recording_completed")
    recording = models.ForeignKey("recordings.Recording", on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.event_type} {self.recording_id}"
