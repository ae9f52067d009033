import json
import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from biztel.numbers import normalize_number
from callactions import patterns, render


class EventType(models.TextChoices):
    RECORDING_COMPLETED = "recording_completed", "recording completed / speech-recognition integration completed"
    RECORDING_ABSENT = "recording_absent", "recording absent (no file of the call has audio)"
    RECORDING_DELETED = "recording_deleted", "recording deleted (its files deleted on request)"


class ExternalNumber(models.Model):
    """A trunk/DID number calls come in on. Numbers seen in calls are added here
    unticked; an action applies to a number only once it is ticked as a target."""

    number = models.CharField(max_length=32, unique=True, help_text="Digits only; hyphens are removed.")
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]

    def __str__(self):
        return f"{self.number} ({self.label})" if self.label else self.number

    def clean(self):
        try:
            self.number = normalize_number(self.number)
        except ValueError:
            raise ValidationError({"number": "Not a phone number: digits and hyphens only."}) from None


class CallAction(models.Model):
    """One templated HTTP request sent when an event happens (SPEC.md §5)."""

    class Method(models.TextChoices):
        GET = "GET"
        POST = "POST"

    class IntegrationType(models.TextChoices):
        MANUAL = "manual"

    name = models.CharField(max_length=100, unique=True)
    event_type = models.CharField(max_length=40, choices=EventType.choices, default=EventType.RECORDING_COMPLETED)
    order = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Execution order among the actions of the same event."
    )
    condition_code = models.CharField(
        max_length=500, blank=True, help_text="Template, e.g. {TEL}. Empty with a pattern: the pattern sees ''."
    )
    condition_pattern = models.CharField(
        max_length=500, blank=True, help_text="Regex (bare or /…/flags); the action runs only if it matches the code."
    )
    integration_type = models.CharField(max_length=20, choices=IntegrationType.choices, default=IntegrationType.MANUAL)
    url = models.TextField(
        "URL",
        help_text="Template; every value is percent-encoded, e.g. "
        "https://customer.example/monitor_file_event?ID={ID}&TEL={TEL}&DATE={DATE}",
    )
    method = models.CharField(max_length=4, choices=Method.choices, default=Method.GET)
    headers = models.TextField("request headers", blank=True, help_text="Template, one 'Name: value' per line.")
    body = models.TextField(
        "request body",
        blank=True,
        help_text="Template (POST only). JSON bodies get JSON-escaped values, form bodies form-encoded ones. "
        "Without a Content-Type header a body starting with { or [ is sent as JSON, anything else as a form.",
    )
    timeout = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(120)], help_text="Seconds."
    )
    extraction_pattern = models.TextField(
        "variable extraction pattern",
        blank=True,
        help_text="Regex with named groups in capitals, e.g. (?P<TOKEN>[a-z0-9]+); each group becomes {TOKEN} "
        "for the later actions of the same run.",
    )
    memo = models.TextField(blank=True)
    error_pattern = models.TextField(
        blank=True, help_text="Regex; a response body that matches is a failure even with a 2xx status."
    )
    retry_count = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(100)], help_text="N retries: at most N+1 attempts."
    )
    retry_interval = models.PositiveIntegerField(
        default=1, validators=[MaxValueValidator(86400)], help_text="Seconds between attempts."
    )
    targets = models.ManyToManyField(
        ExternalNumber, blank=True, related_name="call_actions", help_text="The external numbers this action applies to."
    )
    enabled = models.BooleanField(default=True)
    signing_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="Optional whsec_<base64> secret: requests are then signed as Standard Webhooks says.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event_type", "order", "name"]

    def __str__(self):
        return self.name

    def earlier_actions(self):
        return CallAction.objects.filter(event_type=self.event_type, order__lt=self.order).exclude(pk=self.pk)

    def known_variables(self):
        """Built-in variables and the named groups of earlier actions' extraction patterns."""
        known = set(render.BUILTIN_VARIABLES)
        for pattern in self.earlier_actions().exclude(extraction_pattern="").values_list("extraction_pattern", flat=True):
            try:
                known.update(patterns.group_names(pattern))
            except patterns.PatternError:
                pass
        return known

    def uses_files(self):
        templates = (self.url, self.headers, self.body, self.condition_code)
        return any(
            name.startswith(("FILE_", "AUDIO_")) or name == "STATUS"
            for text in templates
            for name in render.variables_in(text)
        )

    def clean(self):
        errors = {}
        for field in ("condition_pattern", "extraction_pattern", "error_pattern"):
            text = getattr(self, field)
            if text:
                try:
                    patterns.compile_pattern(text)
                except patterns.PatternError as exc:
                    errors[field] = f"Invalid pattern: {exc}."
        if self.extraction_pattern and "extraction_pattern" not in errors:
            for name in patterns.group_names(self.extraction_pattern):
                if not render.VARIABLE_NAME.fullmatch(name):
                    errors["extraction_pattern"] = (
                        f"The group name {name!r} cannot be a variable: use capitals, digits and underscores."
                    )
                elif name in render.BUILTIN_VARIABLES:
                    errors["extraction_pattern"] = f"The group name {name!r} is a built-in variable; choose another."
        known = self.known_variables()
        for field in ("url", "headers", "body", "condition_code"):
            unknown = sorted(set(render.variables_in(getattr(self, field))) - known)
            if unknown:
                names = ", ".join(f"{{{name}}}" for name in unknown)
                errors[field] = (
                    f"Unknown variable {names}: use a built-in variable or a named group of the extraction "
                    "pattern of an earlier action (lower order, same event)."
                )
        if "headers" not in errors:
            try:
                render.header_lines(self.headers)
            except render.RenderError as exc:
                errors["headers"] = f"Invalid headers: {exc}."
        if self.body and self.method == self.Method.GET:
            errors["body"] = "A GET request has no body: choose POST or leave the body empty."
        if self.signing_secret:
            try:
                render.signing_key(self.signing_secret)
            except ValueError as exc:
                errors["signing_secret"] = str(exc)
        if not errors:
            self._check_rendered(known, errors)
        if errors:
            raise ValidationError(errors)

    def _check_rendered(self, known, errors):
        values = {name: "0" for name in known} | render.SAMPLE_VARIABLES
        try:
            request = render.render_request(
                method=self.method, url=self.url, headers=self.headers, body=self.body, values=values
            )
        except render.RenderError as exc:
            errors["url"] = f"Invalid URL: {exc}."
            return
        kind, _ = render.body_kind(request["headers"], self.body)
        if self.method == self.Method.POST and self.body and kind == "json":
            try:
                json.loads(request["body"])
            except ValueError as exc:
                errors["body"] = f"The body is not valid JSON once its variables are filled in: {exc}."


class Event(models.Model):
    """Something call actions react to, written in the same transaction as its cause.

    Delivery state lives here: who holds it (claim, until when), when it should run
    next, and when it was last handed to the queue (the sweep re-queues the rest).
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed", "failed (could not be run: see error)"
        CANCELLED = "cancelled", "cancelled by an administrator"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=40, default="recording_completed")
    recording = models.ForeignKey("recordings.Recording", on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    run = models.PositiveIntegerField(default=1, help_text="Raised by each resend.")
    next_attempt_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(null=True, blank=True, help_text="Empty: the queue could not be reached.")
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why the event could not be run (status failed).")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="event_pending_idx"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.recording_id}"


class Step(models.Model):
    """One action of one run of an event: the persisted state a retry or a crash resumes from.

    Its id is the event id header (webhook-id) of every attempt of this step.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped", "skipped (condition not met)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="steps")
    run = models.PositiveIntegerField()
    position = models.PositiveIntegerField()
    action = models.ForeignKey(CallAction, null=True, on_delete=models.SET_NULL, related_name="steps")
    action_name = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    condition_matched = models.BooleanField(null=True)
    request = models.JSONField(null=True, blank=True, help_text="The rendered request, sent as is on every attempt.")
    extracted = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["event", "run", "position"]
        constraints = [models.UniqueConstraint(fields=["event", "run", "position"], name="one_step_per_position")]

    def __str__(self):
        return f"{self.action_name} ({self.status})"


class Attempt(models.Model):
    """One HTTP request: written before it is sent, completed after."""

    OUTCOME_FIELDS = ["status_code", "elapsed_ms", "response_excerpt", "error", "succeeded", "finished_at"]

    step = models.ForeignKey(Step, null=True, blank=True, on_delete=models.CASCADE, related_name="attempt_rows")
    action = models.ForeignKey(CallAction, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempts")
    is_test = models.BooleanField(default=False)
    number = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="Empty: the worker stopped mid-request.")
    method = models.CharField(max_length=4)
    url = models.TextField()
    event_id = models.CharField("event id header", max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    elapsed_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)
    succeeded = models.BooleanField(null=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "delivery attempt"
        verbose_name_plural = "delivery log"

    def __str__(self):
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} {self.method} {self.url} → {self.status_code or self.error}"
