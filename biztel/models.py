from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from biztel.numbers import normalize_number


class Role(models.TextChoices):
    ADMINISTRATOR = "administrator", "Administrator"
    SUPERVISOR = "supervisor", "Supervisor"
    OPERATOR = "operator", "Operator"
    PBX = "pbx", "PBX (ingest only)"


def split_csv(value):
    return [item.strip() for item in (value or "").split(",") if item.strip()]


class Account(AbstractUser):
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.OPERATOR)
    visible_groups = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Operator groups whose recordings this account may see, comma-separated. "
        "Empty means all groups.",
    )

    class Meta(AbstractUser.Meta):
        verbose_name = "account"
        verbose_name_plural = "accounts"
        swappable = "AUTH_USER_MODEL"

    def group_list(self):
        return split_csv(self.visible_groups)

    def may_see_group(self, group):
        groups = self.group_list()
        return not groups or group in groups


class ApiToken(models.Model):
    """An API token; only the SHA-256 of the secret is stored."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=8, editable=False, help_text="First characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API token"

    def __str__(self):
        label = self.name or "token"
        return f"{label} ({self.prefix}…) of {self.account}"


class SystemSettings(models.Model):
    """Licences and system settings: one row, read through biztel.config."""

    # Licences
    recording = models.BooleanField("recording licence", default=True)
    recording_file_api = models.BooleanField("recording-file API licence (contracted)", default=True)
    voice_file_separation = models.BooleanField("voice-file-separation licence", default=True)
    call_action = models.BooleanField("call-action licence", default=True)
    bulk_download = models.BooleanField("bulk-download licence", default=False)
    # Settings
    recording_file_api_enabled = models.BooleanField(default=True)
    burst_limit_per_second = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1)])
    monthly_request_limit = models.PositiveIntegerField(default=100_000)
    monthly_response_object_limit = models.PositiveIntegerField(default=100_000)
    separated_retention_days = models.PositiveIntegerField(default=7, validators=[MinValueValidator(1)])
    bulk_retention_days = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    monaural_retention_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Empty: mixed files are kept."
    )
    recording_key = models.CharField(
        max_length=20,
        choices=[("request_id", "request_id"), ("unique_id", "unique_id")],
        default="unique_id",
        help_text="Which ID goes into file names.",
    )
    separation_targets = models.TextField(
        blank=True,
        help_text="External numbers whose calls get separated files, comma-separated. Empty means all.",
    )
    prohibit_download_below_supervisor = models.BooleanField(
        default=False, help_text="Supervisors and operators may not download recordings."
    )
    mp3_bitrate_kbps = models.PositiveIntegerField(
        default=32,
        choices=[(k, f"{k} kbps") for k in (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128)],
        help_text="CBR bit rate of the MP3s produced at ingest.",
    )
    deleted_metadata_days = models.PositiveIntegerField(
        default=40,
        validators=[MinValueValidator(1)],
        help_text="Days the metadata of a recording deleted on request is kept (status deleted) before the purge removes it.",
    )
    stereo_file = models.BooleanField(
        default=False,
        help_text="Also store the 2-channel MP3 (customer left, operator right) with the separated legs.",
    )
    keep_lossless = models.BooleanField(
        default=False, help_text="Also store a FLAC copy of every MP3 produced at ingest (format=flac|wav)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "licences and settings"
        verbose_name_plural = "licences and settings"

    def __str__(self):
        return "Licences and settings"

    def clean(self):
        numbers, bad = [], []
        for target in split_csv(self.separation_targets):
            try:
                numbers.append(normalize_number(target))
            except ValueError:
                bad.append(target)
        if bad:
            raise ValidationError({"separation_targets": f"Not a phone number: {', '.join(bad)}"})
        self.separation_targets = ",".join(numbers)

    def separation_target_list(self):
        return split_csv(self.separation_targets)


class MonthlyUsage(models.Model):
    """The server-wide quota counter of one calendar month (server time zone)."""

    month = models.DateField(unique=True, help_text="First day of the month.")
    requests = models.PositiveIntegerField(default=0)
    response_objects = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-month"]
        verbose_name_plural = "monthly usage"

    def __str__(self):
        return self.month.strftime("%Y-%m")


class ConfigChange(models.Model):
    """One change of configuration (licences and settings, call actions, accounts, tokens),
    made in admin or by a command: who, when, which object, each field before → after."""

    class Source(models.TextChoices):
        ADMIN = "admin", "admin"
        COMMAND = "command", "command"

    class Action(models.TextChoices):
        CREATED = "created", "created"
        CHANGED = "changed", "changed"
        DELETED = "deleted", "deleted"

    at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    who = models.CharField(max_length=150, help_text="The admin user, or the OS user who ran the command.")
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The admin user."
    )
    action = models.CharField(max_length=10, choices=Action.choices)
    content_type = models.ForeignKey("contenttypes.ContentType", on_delete=models.PROTECT, verbose_name="kind")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField("object", max_length=200)
    changes = models.JSONField(default=dict, help_text="Each changed field: [before, after].")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "configuration change"
        indexes = [models.Index(fields=["content_type", "at"])]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.source} {self.who}: {self.action} {self.object_repr}"
