"""The project roof: settings, URLconfs, ASGI routing, the Celery app, and what assembles the
cluster domain (`console`) with Replica Of (`replication`): the bdb resource and the database
pages. The roof may import everything; nothing imports the roof."""

from __future__ import annotations

from config.celery import app as celery_app

__all__ = ["celery_app"]
