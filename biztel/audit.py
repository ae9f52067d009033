"""The audit trail of configuration changes (SPEC.md §10): licences and settings, call
actions, accounts, tokens. One function records a change; the admin (AuditedAdmin) and
the commands (biztel_settings, create_api_token, import_callactions, enrol_totp) call it."""

import getpass
import hashlib
import json
import os
from datetime import UTC, datetime

from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from biztel.models import ConfigChange

# Shown as a fingerprint: the trail tells that a secret changed, never the secret.
SECRET_FIELDS = {"password", "digest", "signing_secret", "key"}
# Bookkeeping that changes on its own, not configuration.
SKIPPED_FIELDS = {"last_login", "last_used_at", "drift", "last_t", "throttling_failure_timestamp", "throttling_failure_count"}


def snapshot(instance):
    """The object's configuration as JSON values: {field: value}, many-to-many as sorted names."""
    values = {}
    for field in instance._meta.concrete_fields:
        if field.primary_key or field.name in SKIPPED_FIELDS or getattr(field, "auto_now", False):
            continue
        if field.is_relation:
            related = getattr(instance, field.name)
            value = None if related is None else str(related)
        else:
            value = field.value_from_object(instance)
        if isinstance(value, datetime):
            # To the second and in UTC: the admin's date and time widgets drop the microseconds.
            value = value.astimezone(UTC).replace(microsecond=0)
        if field.name in SECRET_FIELDS and value:
            value = "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:12]
        values[field.name] = value
    if instance.pk is not None:
        for field in instance._meta.many_to_many:
            values[field.name] = sorted(str(item) for item in getattr(instance, field.name).all())
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def _os_user():
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}"


def config_change_record(*, instance, before, after, user=None):
    """Record one change of `instance`: before/after are snapshot() dicts (None: it did not
    exist). user is the admin user; None means a management command (the OS user is kept).
    A change that changed nothing is not recorded. Returns the row or None."""
    if before is None:
        action = ConfigChange.Action.CREATED
    elif after is None:
        action = ConfigChange.Action.DELETED
    else:
        action = ConfigChange.Action.CHANGED
    old, new = before or {}, after or {}
    changes = {
        name: [old.get(name), new.get(name)] for name in sorted({*old, *new}) if old.get(name) != new.get(name)
    }
    if action == ConfigChange.Action.CHANGED and not changes:
        return None
    if user is None:
        source, who = ConfigChange.Source.COMMAND, _os_user()
    else:
        source, who = ConfigChange.Source.ADMIN, user.get_username()
    return ConfigChange.objects.create(
        at=timezone.now(),
        source=source,
        who=who,
        account=user,
        action=action,
        content_type=ContentType.objects.get_for_model(instance),
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        changes=changes,
    )


class AuditedAdmin:
    """ModelAdmin mixin: every add, change and delete made in admin goes into the trail."""

    def save_model(self, request, obj, form, change):
        form.audit_before = snapshot(type(obj)._default_manager.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        # After the many-to-many fields (call-action targets, account groups) are saved too.
        super().save_related(request, form, formsets, change)
        config_change_record(
            instance=form.instance, before=getattr(form, "audit_before", None), after=snapshot(form.instance),
            user=request.user,
        )

    def delete_model(self, request, obj):
        config_change_record(instance=obj, before=snapshot(obj), after=None, user=request.user)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            config_change_record(instance=obj, before=snapshot(obj), after=None, user=request.user)
        super().delete_queryset(request, queryset)
