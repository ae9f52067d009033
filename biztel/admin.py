import json

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from biztel import config, twofactor
from biztel.audit import AuditedAdmin, config_change_record, snapshot
from biztel.models import Account, ApiToken, ConfigChange, MonthlyUsage, SystemSettings
from biztel.selectors import usage_this_month
from biztel.tokens import token_issue, token_revoke


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the product writes itself (the access log, audit trails): shown, never edited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Account)
class AccountAdmin(AuditedAdmin, UserAdmin):
    list_display = ("username", "role", "visible_groups", "is_active", "is_staff", "last_login")
    list_filter = ("role", "is_active", "is_staff")
    fieldsets = UserAdmin.fieldsets + (("Recording access", {"fields": ("role", "visible_groups")}),)
    add_fieldsets = UserAdmin.add_fieldsets + (("Recording access", {"fields": ("role", "visible_groups")}),)
    actions = ["issue_recovery_codes"]

    def user_change_password(self, request, id, form_url=""):
        account = Account.objects.filter(pk=id).first()
        before = snapshot(account) if account else None
        response = super().user_change_password(request, id, form_url)
        if account is not None and request.method == "POST":
            account.refresh_from_db()
            config_change_record(instance=account, before=before, after=snapshot(account), user=request.user)
        return response

    @admin.action(description="Issue new recovery codes (shown once; the old ones stop working)")
    def issue_recovery_codes(self, request, queryset):
        for account in queryset:
            codes = twofactor.recovery_codes_issue(account=account)
            messages.warning(request, f"Recovery codes of {account}, shown only this once: {' '.join(codes)}")


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin, admin.ModelAdmin):
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
            before = snapshot(token)
            token_revoke(token=token)
            token.refresh_from_db()
            config_change_record(instance=token, before=before, after=snapshot(token), user=request.user)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")


@admin.register(SystemSettings)
class SystemSettingsAdmin(AuditedAdmin, admin.ModelAdmin):
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
                    "deleted_metadata_days",
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


@admin.register(ConfigChange)
class ConfigChangeAdmin(ReadOnlyAdmin):
    list_display = ("at", "source", "who", "action", "content_type", "object_repr", "changed_fields")
    list_filter = (
        ("content_type", admin.RelatedOnlyFieldListFilter),
        "source",
        ("who", admin.AllValuesFieldListFilter),
        "action",
        ("at", admin.DateFieldListFilter),
    )
    search_fields = ("object_repr", "who")
    date_hierarchy = "at"
    list_select_related = ("content_type",)
    fields = ("at", "source", "who", "account", "action", "content_type", "object_id", "object_repr", "before_after")
    readonly_fields = fields
    actions = None

    @admin.display(description="changed")
    def changed_fields(self, obj):
        return ", ".join(obj.changes) or "—"

    @admin.display(description="before → after")
    def before_after(self, obj):
        return format_html(
            "<table><tr><th>field</th><th>before</th><th>after</th></tr>{}</table>",
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                ((name, json.dumps(old), json.dumps(new)) for name, (old, new) in obj.changes.items()),
            ),
        )


# django-otp's page of authenticators (QR code, config URL), with its changes in the trail too.
admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class AuditedTOTPDeviceAdmin(AuditedAdmin, TOTPDeviceAdmin):
    pass
