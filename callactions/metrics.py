"""Call-action values read from the database at each scrape of /metrics (biztel/metrics.py)."""

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from callactions.models import Event


class PendingEventsCollector:
    def collect(self):
        pending = Event.objects.filter(status=Event.Status.PENDING).aggregate(count=Count("pk"), oldest=Min("created_at"))
        oldest = pending["oldest"]
        yield GaugeMetricFamily(
            "biztel_callaction_events_pending", "Events whose call actions have not all run yet.", value=pending["count"]
        )
        yield GaugeMetricFamily(
            "biztel_callaction_oldest_pending_event_age_seconds",
            "Age of the oldest pending event (0: none pending).",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0,
        )
