from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.shortcuts import redirect
from django.urls import reverse

from biztel import config
from biztel.models import AccessLogEntry, Account, ApiToken, MonthlyUsage, SystemSettings
from biztel.selectors import usage_this_month
from biztel.tokens import token_issue, token_revoke


@admin.register(Account)
class AccountAdmin(UserAdmin):
    list_display = ("username", "role", "visible_groups", "is_active", "is_staff", "last_login")
    list_filter = ("role", "is_active", "is_staff")
    fieldsets = UserAdmin.fieldsets + (("Recording access", {"fields": ("role", "visible_groups")}),)
    add_fieldsets = UserAdmin.add_fieldsets + (("Recording access", {"fields": ("role", "visible_groups")}),)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("__str__", "account", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at", "account__role")
    search_fields = ("name", "prefix", "account__username")
    fields = ("account", "name", "expires_at", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, plain = token_issue(account=obj.account, name=obj.name, expires_at=obj.expires_at)
        obj.pk = token.pk
        obj.refresh_from_db()
        messages.warning(request, f"The new token, shown only this once: {plain}")

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")


@admin.register(SystemSettings)
class SystemSettingsAdmin(admin.ModelAdmin):
    fieldsets = (
        ("Licences", {"fields": config.LICENCES}),
        (
            "Recording-file API",
            {
                "fields": (
                    "recording_file_api_enabled",
                    "burst_limit_per_second",
                    "monthly_request_limit",
                    "monthly_response_object_limit",
                    "prohibit_download_below_supervisor",
                )
            },
        ),
        (
            "Recordings",
            {
                "fields": (
                    "recording_key",
                    "separation_targets",
                    "mp3_bitrate_kbps",
                    "stereo_file",
                    "keep_lossless",
                    "separated_retention_days",
                    "bulk_retention_days",
                    "monaural_retention_days",
                )
            },
        ),
    )

    def changelist_view(self, request, extra_context=None):
        return redirect(reverse("admin:biztel_systemsettings_change", args=[config.load().pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The month's consumption against the quota, above the limits it is measured by.
        extra_context = {**(extra_context or {}), "usage": usage_this_month()}
        return super().change_view(request, object_id, form_url, extra_context)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        config.forget()


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(admin.ModelAdmin):
    list_display = ("__str__", "requests", "response_objects", "request_limit", "object_limit")
    readonly_fields = ("month", "requests", "response_objects")

    @admin.display(description="request limit")
    def request_limit(self, obj):
        return config.current().monthly_request_limit

    @admin.display(description="object limit")
    def object_limit(self, obj):
        return config.current().monthly_response_object_limit

    def has_add_permission(self, request):
        return False


@admin.register(AccessLogEntry)
class AccessLogAdmin(admin.ModelAdmin):
    list_display = ("at", "account", "token", "method", "recording", "content_type", "status", "bytes_sent", "client_ip")
    list_filter = ("status", "content_type", "method", ("at", admin.DateFieldListFilter))
    search_fields = ("recording__request_id", "recording__unique_id", "account__username", "client_ip", "path")
    date_hierarchy = "at"
    list_select_related = ("account", "token", "recording")
    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

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
