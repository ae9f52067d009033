"""Celery tasks: take an id, call a service."""

from celery import shared_task

from callactions import services


@shared_task(name="callactions.tasks.deliver_event", acks_late=True, reject_on_worker_lost=True)
def deliver_event(event_id):
    for other_id, wait in services.event_deliver(event_id=event_id).items():
        # a retry waits in the queue, not in this worker
        services.event_queue(event_id=other_id, countdown=wait)


@shared_task(name="callactions.tasks.sweep_pending_events")
def sweep_pending_events():
    return services.event_sweep()
