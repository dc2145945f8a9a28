"""Error reports (Django's debug page, mails to admins) without the console's secrets."""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter


class SafeReporting(SafeExceptionReporterFilter):
    """Django's filter hides settings named like a secret; the console's URLs (REDIS_URL, the
    Celery broker, the cache LOCATION, channel layer hosts) carry passwords under other names."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|LOCATION|ADDRESS|HOSTS|CONFIG",
        flags=re.IGNORECASE,
    )
