"""Daily check-ins: at each user's preferred session time, send today's draft (issue 7)."""

from checkins.notifier import Notifier, WebhookError, WebhookNotifier, verify_signature
from checkins.scheduler import CheckinParams, CheckinScheduler, default_worker_id, utcnow
from checkins.store import Checkin, CheckinStore

__all__ = [
    "Checkin",
    "CheckinParams",
    "CheckinScheduler",
    "CheckinStore",
    "Notifier",
    "WebhookError",
    "WebhookNotifier",
    "default_worker_id",
    "utcnow",
    "verify_signature",
]
