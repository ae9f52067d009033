from django import forms
from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html, format_html_join

from biztel.audit import AuditedAdmin
from callactions import render, services
from callactions.models import Attempt, CallAction, Event, ExternalNumber, Step


@admin.register(ExternalNumber)
class ExternalNumberAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("number", "label", "actions_targeting", "created_at")
    search_fields = ("number", "label")

    @admin.display(description="targeted by")
    def actions_targeting(self, obj):
        return ", ".join(action.name for action in obj.call_actions.all()) or "—"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("call_actions")


@admin.register(CallAction)
class CallActionAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("name", "event_type", "order", "method", "url", "target_numbers", "enabled")
    list_filter = ("enabled", "event_type", "method")
    search_fields = ("name", "url", "memo")
    ordering = ("event_type", "order", "name")
    actions = ["send_test"]
    formfield_overrides = {models.ManyToManyField: {"widget": forms.CheckboxSelectMultiple}}
    fieldsets = (
        (None, {"fields": ("name", "event_type", "order", "integration_type", "enabled", "memo")}),
        ("Condition", {"fields": ("condition_code", "condition_pattern")}),
        (
            "Request",
            {
                "fields": ("method", "url", "headers", "body", "timeout", "signing_secret"),
                "description": "Variables: "
                + ", ".join(f"{{{name}}}" for name in render.BUILTIN_VARIABLES)
                + ", and the named groups of earlier actions' extraction patterns.",
            },
        ),
        ("Response", {"fields": ("extraction_pattern", "error_pattern", "retry_count", "retry_interval")}),
        ("Targets", {"fields": ("targets",), "description": "The action applies only to calls on ticked numbers."}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("targets")

    @admin.display(description="targets")
    def target_numbers(self, obj):
        return ", ".join(number.number for number in obj.targets.all()) or "—"

    @admin.action(description="Send a test (sample values) now")
    def send_test(self, request, queryset):
        for action in queryset:
            try:
                attempt = services.action_send_test(action=action)
            except (services.CallActionsOff, render.RenderError) as exc:
                self.message_user(request, f"{action}: {exc}", messages.ERROR)
                continue
            if attempt.succeeded:
                self.message_user(
                    request, f"{action}: HTTP {attempt.status_code} in {attempt.elapsed_ms} ms.", messages.SUCCESS
                )
            else:
                self.message_user(request, f"{action}: failed: {attempt.error}", messages.ERROR)


class StepInline(admin.TabularInline):
    model = Step
    extra = 0
    can_delete = False
    fields = ("run", "position", "action_name", "status", "condition_matched", "attempts", "error", "extracted", "id")
    readonly_fields = fields
    ordering = ("-run", "position")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "event_type", "recording", "status", "run", "next_attempt_at", "finished_at")
    list_filter = ("status", "event_type")
    search_fields = ("recording__request_id", "recording__unique_id", "id")
    list_select_related = ("recording",)
    readonly_fields = (
        "id",
        "event_type",
        "recording",
        "status",
        "run",
        "created_at",
        "next_attempt_at",
        "queued_at",
        "claimed_until",
        "finished_at",
        "error",
        "attempt_log",
    )
    fields = readonly_fields
    inlines = [StepInline]
    actions = ["resend", "cancel"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="attempts")
    def attempt_log(self, obj):
        rows = Attempt.objects.filter(step__event=obj).select_related("step").order_by("started_at")
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    a.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                    a.step.action_name,
                    a.number,
                    a.method,
                    a.url,
                    a.status_code or "—",
                    "—" if a.elapsed_ms is None else f"{a.elapsed_ms} ms",
                    a.error or ("ok" if a.succeeded else "in flight or interrupted" if a.finished_at is None else ""),
                    a.response_excerpt[:200],
                )
                for a in rows
            ),
        )
        return format_html(
            "<table><tr><th>time</th><th>action</th><th>attempt</th><th>method</th><th>URL</th><th>status</th>"
            "<th>elapsed</th><th>error</th><th>response</th></tr>{}</table>",
            body,
        )

    @admin.action(description="Resend (run every action again)")
    def resend(self, request, queryset):
        busy = [str(event.pk) for event in queryset if not services.event_resend(event=event)]
        if busy:
            self.message_user(request, f"Being delivered right now, not resent: {', '.join(busy)}", messages.WARNING)
        self.message_user(request, f"Queued {queryset.count() - len(busy)} event(s) again.")

    @admin.action(description="Cancel (send nothing more for the selected events)")
    def cancel(self, request, queryset):
        cancelled = sum(services.event_cancel(event=event) for event in queryset)
        skipped = queryset.count() - cancelled
        self.message_user(request, f"Cancelled {cancelled} event(s).")
        if skipped:
            self.message_user(request, f"{skipped} event(s) were not pending and are left as they are.", messages.WARNING)


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = (
        "started_at",
        "action",
        "is_test",
        "number",
        "method",
        "url",
        "status_code",
        "elapsed_ms",
        "succeeded",
        "error",
    )
    list_filter = (("started_at", admin.DateFieldListFilter), "succeeded", "status_code", "is_test", "action")
    date_hierarchy = "started_at"
    search_fields = ("url", "event_id", "error")
    list_select_related = ("action",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
