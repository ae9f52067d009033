"""The one seam through which the rest of the product hears about recordings.

recording_event is sent inside the database transaction that stores, finds silent or
deletes a recording, with `recording` and `event_type` (one of the names below).
Receivers write in that same transaction, so what they write commits with the recording
or not at all; an exception raised by a receiver rolls the recording back too (the
signal is sent with send(), not send_robust()). The call actions connect their event
writer in CallActionsConfig.ready(); recordings do not know who listens.
"""

from django.dispatch import Signal

RECORDING_COMPLETED = "recording_completed"
RECORDING_ABSENT = "recording_absent"
RECORDING_DELETED = "recording_deleted"

recording_event = Signal()


def recording_event_send(*, recording, event_type):
    """Call inside the recording's transaction."""
    recording_event.send(sender=type(recording), recording=recording, event_type=event_type)
