"""Celery tasks: take an id, call a service."""

import logging

from celery import shared_task
from django.db import connection

from callactions import services

log = logging.getLogger(__name__)
# After the database dropped the connection mid-batch, try again this soon (a new
# connection is made then); the sweep is the net if the broker is gone as well.
RECONNECT_SECONDS = 2


@shared_task(name=services.DELIVER_TASK, acks_late=True, reject_on_worker_lost=True)
def deliver_event(event_id):
    try:
        again = services.event_deliver(event_id=event_id)
    except services.CONNECTION_ERRORS as exc:
        log.warning("database connection lost while delivering event %s (%s); trying again", event_id, exc)
        connection.close()
        services.event_queue(event_id=event_id, countdown=RECONNECT_SECONDS)
        return
    for other_id, wait in again.items():
        # a retry waits in the queue, not in this worker
        services.event_queue(event_id=other_id, countdown=wait)


@shared_task(name="callactions.tasks.sweep_pending_events")
def sweep_pending_events():
    return services.event_sweep()
