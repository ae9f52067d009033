"""Writes for call actions: events, their delivery step by step, tests, resends, import."""

import logging
import operator
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial, reduce

from django.core.exceptions import ValidationError
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from biztel import config, metrics
from biztel.celery import app as celery_app
from biztel.numbers import normalize_number
from callactions import patterns, render, selectors, transport
from callactions.models import Attempt, CallAction, Event, EventType, ExternalNumber, Step

log = logging.getLogger(__name__)

# A claim outlives the step's own timeout by this much (transport.py ends every attempt at
# its timeout); past it the worker holding it is presumed dead and the sweep hands the
# event to another one.
LEASE_MARGIN_SECONDS = 10
# What a claim covers at first: a step with the default timeout needs no renewal.
CLAIM_SECONDS = 2 * LEASE_MARGIN_SECONDS + 10
# A receiver's Retry-After (429/503) is honoured when longer than retry_interval, up to this.
MAX_RETRY_AFTER_SECONDS = 86400
# A worker delivers up to this many due events per task, so that the queries around
# them (claim, reads, ends) are shared; it leaves the rest of its batch to the queue
# once it has spent BATCH_SECONDS on it, so a slow receiver holds back few others.
EVENT_BATCH = 50
BATCH_SECONDS = 2
# An event handed to the queue this recently is left alone by the sweep.
SWEEP_GRACE_SECONDS = 10
SWEEP_BATCH = 1000
DELIVER_TASK = "callactions.tasks.deliver_event"
EXCERPT_CHARS = 2000


class CallActionsOff(Exception):
    pass


@contextmanager
def asynchronous_commit():
    """Delivery bookkeeping whose commits do not wait for the disk.

    A database crash can lose the last few of these commits; that can only make a step
    be sent again (with the same event id), never lose a notification, because the
    event itself was committed durably with its recording. Waiting for the disk at
    every step would cost more than the HTTP request itself.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        except DatabaseError:
            pass  # the connection is gone, and the setting with it


def event_create_recording_completed(*, recording):
    """Call inside the recording's transaction: the event commits with it or not at all,
    and is handed to the queue only once it has."""
    if recording.external_number:
        # New numbers show up in admin, unticked, ready to be made targets.
        ExternalNumber.objects.bulk_create([ExternalNumber(number=recording.external_number)], ignore_conflicts=True)
    return event_create(recording=recording, event_type=EventType.RECORDING_COMPLETED)


def event_create_for_signal(sender, *, recording, event_type, **kwargs):
    """recordings.signals.recording_event's receiver (connected in CallActionsConfig.ready())."""
    if event_type == EventType.RECORDING_COMPLETED:
        event_create_recording_completed(recording=recording)
    else:
        event_create(recording=recording, event_type=EventType(event_type))


def event_create(*, recording, event_type):
    """An event of this type for the recording, in the caller's transaction; queued once it commits."""
    if not config.current().call_action:
        return None
    event = Event.objects.create(event_type=event_type, recording=recording, queued_at=timezone.now())
    transaction.on_commit(partial(event_queue, event_id=event.pk))
    return event


def event_queue(*, event_id, countdown=None):
    """Hand the event to the queue. When the broker cannot be reached, say so on the row
    and leave the event to the sweep: the caller's commit must not fail for it."""
    try:
        # By name: tasks.py calls these services, so importing it here would make a circle.
        celery_app.send_task(DELIVER_TASK, (str(event_id),), countdown=countdown, retry=False)
    except Exception as exc:  # kombu and redis-py raise a dozen types for "broker down"
        log.warning("could not queue event %s (%s); the sweep will", event_id, exc)
        Event.objects.filter(pk=event_id).update(queued_at=None)
        return False
    return True


def event_sweep():
    """Re-queue pending events nobody holds that were never queued or fell out of the queue."""
    if not config.current().call_action:
        return 0
    due = selectors.events_to_requeue(now=timezone.now(), grace_seconds=SWEEP_GRACE_SECONDS, limit=SWEEP_BATCH)
    queued = []
    for event_id in due:
        if not event_queue(event_id=event_id):
            break
        queued.append(event_id)
    Event.objects.filter(pk__in=queued).update(queued_at=timezone.now())
    return len(queued)


def event_resend(*, event):
    """Run every action of the event again, as a new run with new event ids. False when
    the event is being delivered right now."""
    now = timezone.now()
    updated = (
        Event.objects.filter(pk=event.pk)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(
            run=F("run") + 1,
            status=Event.Status.PENDING,
            next_attempt_at=now,
            queued_at=now,
            finished_at=None,
            claim=None,
            claimed_until=None,
            error="",
        )
    )
    if updated:
        transaction.on_commit(partial(event_queue, event_id=event.pk))
    return bool(updated)


@dataclass
class Claim:
    """The lease one task holds on the events it delivers: a token written on their rows
    with a deadline. Only the holder runs an event; past the deadline the sweep hands it
    to another worker, so the holder extends it before any send that could outlast it."""

    token: uuid.UUID
    until: datetime
    event_ids: set = field(default_factory=set)

    @classmethod
    def take(cls, *, event_id, now):
        """Claim this event and up to EVENT_BATCH - 1 others that are due and held by nobody;
        None when none was free (most often: an earlier batch delivered this one already)."""
        claim = cls(token=uuid.uuid4(), until=now + timedelta(seconds=CLAIM_SECONDS))
        due = Q(status=Event.Status.PENDING, next_attempt_at__lte=now) & (
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
        )
        # Two workers may pick the same others: the first to update them has them, the
        # second finds them claimed when it reads its own back, and leaves them out.
        others = Event.objects.filter(due).exclude(pk=event_id).order_by("next_attempt_at").values("pk")[: EVENT_BATCH - 1]
        claimed = Event.objects.filter(due).filter(Q(pk=event_id) | Q(pk__in=others)).update(
            claim=claim.token, claimed_until=claim.until
        )
        return claim if claimed else None

    def holds(self, event):
        return event.pk in self.event_ids

    def cover(self, event, seconds):
        """Make the claim last at least `seconds` more; False when `event` was taken over
        (or cancelled) meanwhile."""
        now = timezone.now()
        if now + timedelta(seconds=seconds) <= self.until:
            return self.holds(event)
        until = now + timedelta(seconds=seconds + LEASE_MARGIN_SECONDS)
        held = Event.objects.filter(claim=self.token, status=Event.Status.PENDING)
        if held.update(claimed_until=until) != len(self.event_ids):
            self.event_ids = set(held.values_list("pk", flat=True))
        self.until = until
        return self.holds(event)

    def release(self, event_ids, **changes):
        """Hand these events back (with changes written on them); they are no longer held."""
        Event.objects.filter(pk__in=event_ids, claim=self.token, status=Event.Status.PENDING).update(
            claim=None, claimed_until=None, **changes
        )
        self.event_ids.difference_update(event_ids)


@dataclass(frozen=True)
class Outcome:
    """What a step, and so its event, needs next: nothing more (FINISHED), another try
    after `seconds` (retry), or nothing from this worker, which lost its claim (LOST)."""

    kind: str
    seconds: float = 0


FINISHED = Outcome("finished")
LOST = Outcome("lost")


def retry_in(seconds):
    return Outcome("retry", seconds)


# A dropped or refused database connection is not the event's fault: the batch stops,
# its claims are handed back, and the task is retried (tasks.py).
CONNECTION_ERRORS = (InterfaceError, OperationalError)


def event_cancel(*, event):
    """Stop delivering a pending event: no further step or retry is sent (an attempt in
    flight at this moment still completes). False when it was not pending."""
    return bool(
        Event.objects.filter(pk=event.pk, status=Event.Status.PENDING).update(
            status=Event.Status.CANCELLED, finished_at=timezone.now(), claim=None, claimed_until=None
        )
    )


def event_deliver(*, event_id):
    """Run the event's actions from where its last run stopped, and those of up to
    EVENT_BATCH - 1 other events that are due and that nobody holds.

    Returns {event id: seconds} of the events to queue again: after that many seconds
    (a step waits for a retry), or at once (None: the batch ran out of time before
    it reached them). Only the worker that claims an event runs it; a step that
    succeeded is never sent again because its outcome is on its row before the next
    one starts. One event's trouble (a row that cannot be read, a request that cannot
    be built or sent) fails that event or step alone; the others go on.
    """
    if not config.current().call_action:
        return {}
    now = timezone.now()
    claim = Claim.take(event_id=event_id, now=now)
    if claim is None:
        return {}
    with asynchronous_commit():
        try:
            events = list(
                Event.objects.filter(claim=claim.token, status=Event.Status.PENDING, next_attempt_at__lte=now).order_by(
                    "next_attempt_at"
                )
            )
            if not events:
                return {}
            claim.event_ids = {event.pk for event in events}
            return _events_run(events, claim)
        except BaseException:
            _claim_drop(claim)
            raise


def _claim_drop(claim):
    """Hand back every event of a batch that stopped; on a fresh connection when the
    database dropped ours, so the events are free again as soon as it is back."""
    for _ in range(2):
        try:
            Event.objects.filter(claim=claim.token).update(claim=None, claimed_until=None)
            return
        except CONNECTION_ERRORS:
            try:
                connection.close()
            except DatabaseError:
                pass
        except DatabaseError:
            return  # the claims expire by themselves


def _events_run(events, claim):
    """Run the claimed events one after the other, writing their ends in bulk."""
    started = time.monotonic()
    recordings = _recordings_of(events)
    steps_of = _steps_of_runs(events, recordings)
    done, again = [], {}
    try:
        for index, event in enumerate(events):
            if index and time.monotonic() - started > BATCH_SECONDS:
                rest = [later.pk for later in events[index:] if claim.holds(later)]
                claim.release(rest)
                again.update(dict.fromkeys(rest))
                break
            if not claim.holds(event):
                continue  # taken over (or cancelled) while this batch held it too long
            try:
                if event.recording_id not in recordings:
                    raise LookupError(f"its recording (id {event.recording_id}) cannot be read")
                event.recording = recordings[event.recording_id]
                outcome = _event_run(event, steps_of[event.pk], claim)
            except CONNECTION_ERRORS:
                raise
            except Exception as exc:
                log.exception("call-action event %s cannot be run", event.pk)
                _event_fail(event, claim, f"cannot be run: {exc.__class__.__name__}: {exc}")
                continue
            if outcome is LOST:
                continue
            if outcome is FINISHED:
                done.append(event.pk)
            else:
                next_at = timezone.now() + timedelta(seconds=outcome.seconds)
                claim.release([event.pk], next_attempt_at=next_at, queued_at=next_at)
                again[event.pk] = outcome.seconds
    finally:
        Event.objects.filter(pk__in=done, claim=claim.token, status=Event.Status.PENDING).update(
            status=Event.Status.DONE, finished_at=timezone.now(), claim=None, claimed_until=None
        )
    return again


def _recordings_of(events):
    """{recording id: row} of the events; a row that cannot be read is left out (its
    event fails alone) instead of failing the whole batch's read."""
    from recordings.models import Recording

    ids = {event.recording_id for event in events}
    try:
        return Recording.objects.in_bulk(ids)
    except CONNECTION_ERRORS:
        raise
    except DatabaseError:
        pass
    readable = {}
    for recording_id in ids:
        try:
            readable.update(Recording.objects.in_bulk([recording_id]))
        except CONNECTION_ERRORS:
            raise
        except DatabaseError:
            log.exception("recording %s cannot be read", recording_id)
    return readable


def _event_run(event, steps, claim):
    """Run the event's pending steps in order; the outcome of the event."""
    values = selectors.event_variables(event, files=any(step.action and step.action.uses_files() for step in steps))
    for step in steps:
        if step.status == Step.Status.PENDING:
            try:
                outcome = _step_run(event=event, step=step, steps=steps, values=values, claim=claim)
            except CONNECTION_ERRORS:
                raise
            except Exception as exc:
                log.exception("call-action step %s failed unexpectedly", step.pk)
                outcome = _step_finish(step, Step.Status.FAILED, f"internal error: {exc.__class__.__name__}: {exc}")
            if outcome is not FINISHED:
                return outcome
        if step.status == Step.Status.SUCCEEDED:
            values.update(step.extracted)
    return FINISHED


def _event_fail(event, claim, error):
    """An event that cannot be run at all: its unfinished steps and itself are failed, with why."""
    Step.objects.filter(event=event, run=event.run, status=Step.Status.PENDING).update(
        status=Step.Status.FAILED, error=error, finished_at=timezone.now()
    )
    Event.objects.filter(pk=event.pk, claim=claim.token, status=Event.Status.PENDING).update(
        status=Event.Status.FAILED, error=error, finished_at=timezone.now(), claim=None, claimed_until=None
    )
    claim.event_ids.discard(event.pk)


def _steps_of_runs(events, recordings):
    """The steps of each event's current run; planned on first use from the actions that
    apply then, so later edits to the list of actions do not reshuffle a run under way."""
    steps_of = {event.pk: [] for event in events}
    current = reduce(operator.or_, (Q(event_id=event.pk, run=event.run) for event in events))
    for step in Step.objects.filter(current).select_related("action").order_by("position"):
        steps_of[step.event_id].append(step)
    actions_of = {}
    planned = []
    for event in events:
        if steps_of[event.pk]:
            continue
        recording = recordings.get(event.recording_id)
        if recording is None:
            continue  # its event fails alone (_events_run)
        key = (event.event_type, recording.external_number)
        if key not in actions_of:
            actions_of[key] = selectors.actions_for(event_type=key[0], external_number=key[1])
        steps_of[event.pk] = [
            Step(event=event, run=event.run, position=position, action=action, action_name=action.name)
            for position, action in enumerate(actions_of[key], start=1)
        ]
        planned += steps_of[event.pk]
    Step.objects.bulk_create(planned)
    return steps_of


def condition_matches(action, values):
    if not action.condition_pattern:
        return True
    code = render.render(action.condition_code, values)
    return patterns.search(action.condition_pattern, code) is not None


def _step_run(*, event, step, steps, values, claim):
    action = step.action
    if action is None:
        return _step_finish(step, Step.Status.FAILED, "the call action was deleted before it ran")
    if step.condition_matched is None:
        try:
            step.condition_matched = condition_matches(action, values)
        except (render.RenderError, patterns.PatternError) as exc:
            return _step_finish(step, Step.Status.FAILED, f"condition: {exc}")
        if not step.condition_matched:
            return _step_finish(step, Step.Status.SKIPPED)
    if step.request is None:
        try:
            step.request = render.render_request(
                method=action.method, url=action.url, headers=action.headers, body=action.body, values=values
            )
        except render.RenderError as exc:
            return _step_finish(step, Step.Status.FAILED, _render_failure(exc, step, steps))
    # The send is bounded by the timeout (transport.py); the claim must outlive it, or
    # another worker could send the same step at the same time.
    if not claim.cover(event, action.timeout + LEASE_MARGIN_SECONDS):
        return LOST
    now = timezone.now()
    if event.run == 1 and not any(earlier.attempts for earlier in steps):
        metrics.COMMIT_TO_SEND_SECONDS.observe((now - event.created_at).total_seconds())
    step.attempts += 1
    step.save(update_fields=["condition_matched", "request", "attempts"])
    attempt = Attempt.objects.create(
        step=step,
        action=action,
        number=step.attempts,
        started_at=now,
        method=step.request["method"],
        url=step.request["url"],
        event_id=str(step.id),
    )
    sent = attempt_send(attempt=attempt, request=step.request, action=action)
    if sent.succeeded:
        step.extracted = sent.extracted
        return _step_finish(step, Step.Status.SUCCEEDED)
    step.failures += 1
    if sent.permanent:
        return _step_finish(step, Step.Status.FAILED, f"gave up at once (retrying cannot help): {attempt.error}")
    if step.failures <= action.retry_count:
        wait = max(action.retry_interval, min(sent.retry_after or 0, MAX_RETRY_AFTER_SECONDS))
        step.error = attempt.error
        step.next_attempt_at = now + timedelta(seconds=wait)
        step.save(update_fields=["failures", "error", "next_attempt_at"])
        return retry_in(wait)
    return _step_finish(
        step, Step.Status.FAILED, f"gave up after {step.failures} failed attempt(s): {attempt.error}"
    )


def _step_finish(step, status, error=""):
    step.status = status
    step.error = error
    step.finished_at = timezone.now()
    step.save(update_fields=["status", "error", "finished_at", "condition_matched", "extracted", "failures"])
    return FINISHED


def _render_failure(exc, step, steps):
    for earlier in steps:
        if earlier.position >= step.position or earlier.status == Step.Status.SUCCEEDED or earlier.action is None:
            continue
        pattern = earlier.action.extraction_pattern
        if exc.variable and pattern and exc.variable in patterns.group_names(pattern):
            return (
                f"the variable {{{exc.variable}}} has no value: the earlier action {earlier.action_name!r} "
                f"that extracts it was {earlier.status}"
            )
    return f"cannot build the request: {exc}"


@dataclass(frozen=True)
class Sent:
    """How one attempt went: succeeded with the extracted variables, or failed, perhaps
    for good (permanent), perhaps with the receiver asking for a pause (retry_after)."""

    succeeded: bool
    extracted: dict = field(default_factory=dict)
    permanent: bool = False
    retry_after: float | None = None


def attempt_send(*, attempt, request, action):
    """Send the request of this attempt row and complete (save) the row.

    Success is a 2xx within the timeout whose body does not match the error pattern
    (and does match the extraction pattern, when there is one).
    """
    body = request["body"]
    headers = request["headers"] + render.identity_headers(
        message_id=attempt.event_id, secret=action.signing_secret, timestamp=int(time.time()), body=body
    )
    extracted, permanent, retry_after = {}, False, None
    try:
        response = transport.send(
            method=request["method"], url=request["url"], headers=headers, body=body, timeout=action.timeout
        )
    except transport.TransportError as exc:
        attempt.error = exc.message
        attempt.elapsed_ms = exc.elapsed_ms
        permanent = exc.permanent
    else:
        attempt.status_code = response.status
        attempt.elapsed_ms = response.elapsed_ms
        attempt.response_excerpt = response.text[:EXCERPT_CHARS]
        attempt.error = _judge(response, action, extracted)
        if response.status in (429, 503):
            retry_after = response.retry_after
    attempt.succeeded = not attempt.error
    metrics.CALLACTION_ATTEMPTS.labels(outcome="succeeded" if attempt.succeeded else "failed").inc()
    attempt.finished_at = timezone.now()
    attempt.save(update_fields=Attempt.OUTCOME_FIELDS)
    return Sent(attempt.succeeded, extracted if attempt.succeeded else {}, permanent, retry_after)


def _judge(response, action, extracted):
    """The reason this response is a failure, or '' (and the extracted variables)."""
    if 300 <= response.status < 400:
        where = f" to {response.location}" if response.location else ""
        return f"redirect ({response.status}{where}) not followed: a redirect is a failure"
    if not 200 <= response.status < 300:
        return f"HTTP {response.status}"
    text = response.text
    try:
        if action.error_pattern and patterns.search(action.error_pattern, text):
            return "the response matches the error pattern"
        if action.extraction_pattern:
            match = patterns.search(action.extraction_pattern, text)
            if match is None:
                return "the response does not match the extraction pattern"
            extracted.update({name: value or "" for name, value in match.groupdict().items()})
    except patterns.PatternError as exc:
        return str(exc)
    return ""


def action_send_test(*, action):
    """Send the action once now with sample values; returns the completed Attempt row."""
    if not config.current().call_action:
        raise CallActionsOff("The call_action licence is off.")
    values = {name: "TEST" for name in action.known_variables()} | render.SAMPLE_VARIABLES
    request = render.render_request(
        method=action.method, url=action.url, headers=action.headers, body=action.body, values=values
    )
    attempt = Attempt.objects.create(
        action=action,
        is_test=True,
        started_at=timezone.now(),
        method=request["method"],
        url=request["url"],
        event_id=f"test_{uuid.uuid4().hex}",
    )
    attempt_send(attempt=attempt, request=request, action=action)
    return attempt


def _import_value(key, value, errors):
    if key == "targets":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors[key] = "must be a list of external numbers (strings)"
        return value
    field = CallAction._meta.get_field(key)
    kind = field.get_internal_type()
    if kind == "BooleanField":
        ok = isinstance(value, bool)
    elif kind == "PositiveIntegerField":
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        errors[key] = {"BooleanField": "must be true or false", "PositiveIntegerField": "must be a whole number"}.get(
            kind, "must be a string"
        )
    return value


@transaction.atomic
def callactions_import(*, items):
    """Create or replace (by name) the actions of a §5 JSON list; all or nothing.

    Keys left out take their defaults. Raises ValidationError naming the action and
    field of every problem.
    """
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValidationError("The file must hold a JSON list of objects.")
    names = [item.get("name") for item in items]
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("Every action needs a name.")
        if names.count(name) > 1:
            raise ValidationError(f"The name {name!r} is used twice in the file.")
    defaults = {key: CallAction._meta.get_field(key).get_default() for key in selectors.FILE_KEYS if key != "targets"}
    defaults["targets"] = []
    # Earlier actions first: a later one may use the variables they extract.
    items = sorted(items, key=lambda item: (item.get("event_type", defaults["event_type"]), item.get("order", 1)))
    imported = []
    for item in items:
        name = item["name"]
        errors = {}
        unknown = sorted(set(item) - set(selectors.FILE_KEYS))
        if unknown:
            errors["keys"] = f"unknown key(s): {', '.join(unknown)}"
        values = {key: _import_value(key, item[key], errors) if key in item else defaults[key] for key in defaults}
        numbers = []
        if "targets" not in errors:
            for number in values["targets"]:
                try:
                    numbers.append(normalize_number(number))
                except ValueError:
                    errors["targets"] = f"not a phone number: {number!r}"
        if errors:
            raise ValidationError({f"{name}: {field}": message for field, message in errors.items()})
        action = CallAction.objects.filter(name=name).first() or CallAction()
        for key, value in values.items():
            if key != "targets":
                setattr(action, key, value)
        try:
            action.full_clean()
        except ValidationError as exc:
            raise ValidationError(
                {f"{name}: {field}": messages for field, messages in exc.message_dict.items()}
            ) from None
        action.save()
        for number in numbers:
            ExternalNumber.objects.get_or_create(number=number)
        action.targets.set(ExternalNumber.objects.filter(number__in=numbers))
        imported.append(action)
    return imported
