from callactions.models import Event


def event_create_recording_completed(*, recording):
    """Call inside the recording's transaction: the event commits with it or not at all."""
    return Event.objects.create(event_type="recording_completed", recording=recording)
