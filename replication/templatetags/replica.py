"""Template filters of the Replica Of pages."""

from __future__ import annotations

from django import template

from replication.live import STATUS_LABELS

register = template.Library()


@register.filter
def status_label(status: str) -> str:
    """What the operator reads for a Replica Of state (the page's script uses the same table)."""
    return STATUS_LABELS.get(status, status)
