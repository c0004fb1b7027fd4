"""Celery settings shared by fronts and workers (`watcher.celeryexec`, `watcher.celeryworker`).

Delivery is set for a fleet where any process may die: late acknowledgement, so a task
whose worker process dies is not lost; it runs again on another process at most
`celery.max_retries` times (then it is reported as WorkerLost); prefetch 1; and a
visibility timeout above the longest hard limit, so a long render is not handed to a
second worker while the first still runs. The hard time limit (the prefork pool's
SIGKILL) sits above the render timeout plus grace: a backstop that holds even if the
worker's own supervision is stuck.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import Settings

if TYPE_CHECKING:
    from celery import Celery

TASK_MARGIN = 60.0  # seconds above timeout + grace before Celery's hard limit: checks, verification, copies
RESULT_TTL = 7 * 24 * 3600  # results and shared outputs nobody took are removed after this


def hard_limit(settings: Settings) -> float:
    return settings.render.timeout + settings.render.grace + TASK_MARGIN


def make_app(settings: Settings) -> Celery:
    """A Celery app for `settings`' broker, configured identically on fronts and workers."""
    from celery import Celery  # the optional extra: importing this module needs none of it

    broker = settings.celery.broker
    limit = hard_limit(settings)
    # A reserved, unacknowledged task goes back to the queue after this: it must outlast a run.
    visibility = max(3600, int(3 * limit))
    app = Celery("watcher", broker=broker, backend=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.celery.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_retry_on_worker_lost=True,
        task_time_limit=limit,
        task_track_started=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": visibility},
        result_backend_transport_options={"visibility_timeout": visibility},
        result_expires=RESULT_TTL,
        # A result finished while Redis restarts is stored once it is back (about two minutes of tries).
        result_backend_always_retry=True,
        result_backend_max_retries=20,
        result_backend_max_sleep_between_retries_ms=10000,
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
    )
    return app
