"""Settings: one module, production differs from development only by environment variables.

Defaults are the embedded single-machine setup of `make run`: SQLite and a private control Redis
with their data under `var/`.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet

from console.env import EnvError, env_bool, env_int, env_list, env_str
from console.files import write_private

# Whatever a console process creates (SQLite and its journals, logs, the beat schedule, database
# files, generated secrets) is for the console's user only, however the process was started.
os.umask(0o077)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CONSOLE_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)


def _secret_file(name: str, make: str) -> str:
    """Read a generated secret from var/, creating it once with mode 0600."""
    path = VAR_DIR / name
    if not path.exists():
        write_private(path, make, exclusive=True)
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or _secret_file("secret_key", secrets.token_urlsafe(50))
if len(SECRET_KEY) < 50:
    raise EnvError("SECRET_KEY must be at least 50 characters")
# Fernet key for secrets at rest (passwords, private keys).
ENCRYPTION_KEY = env_str("CONSOLE_ENCRYPTION_KEY") or _secret_file(
    "encryption.key", Fernet.generate_key().decode()
)
try:
    Fernet(ENCRYPTION_KEY.encode())
except ValueError:
    # Never echo the value: it is the key to every stored secret.
    raise EnvError("CONSOLE_ENCRYPTION_KEY must be a Fernet key (url-safe base64)") from None

HTTP_HOST = env_str("CONSOLE_HTTP_HOST", "127.0.0.1")
HTTP_PORT = env_int("CONSOLE_HTTP_PORT", 8080, minimum=1, maximum=65535)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Cluster and node identity.
CLUSTER_NAME = env_str("CONSOLE_CLUSTER_NAME", "cluster.local")
NODE_NAME = env_str("CONSOLE_NODE_NAME", socket.gethostname())
NODE_ADDRESS = env_str("CONSOLE_NODE_ADDRESS", "127.0.0.1")
DB_PORT_MIN = env_int("CONSOLE_DB_PORT_MIN", 12000, minimum=1024, maximum=65535)
DB_PORT_MAX = env_int("CONSOLE_DB_PORT_MAX", 12999, minimum=1024, maximum=65535)
if DB_PORT_MIN > DB_PORT_MAX:
    raise EnvError("CONSOLE_DB_PORT_MIN must not exceed CONSOLE_DB_PORT_MAX")
DATA_DIR = Path(env_str("CONSOLE_DATA_DIR", str(VAR_DIR / "databases"))).resolve()
REDIS_SERVER_BIN = env_str("CONSOLE_REDIS_SERVER", "redis-server")


def _endpoints(name: str) -> list[tuple[str, str, int]]:
    """`host:port,[v6]:port,...` from the environment as (what, host, port)."""
    found: list[tuple[str, str, int]] = []
    for item in env_list(name, []):
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
            raise EnvError(f"{name} must be host:port items, got {item!r}")
        found.append(("an endpoint of the console", host.strip("[]"), int(port)))
    return found


# Endpoints of the console's own services that a Replica Of source must never be, besides the
# control Redis, the SQL database and the web server, which replication.endpoints always refuses
# (the sync gateway adds its port here when it exists).
SERVICE_ENDPOINTS = _endpoints("CONSOLE_SERVICE_ENDPOINTS")
# The node's sync gateway (replication/syncer/gateway.py; `manage.py sync_gateway`, started by
# `make run`): compressed replication streams of this node's databases for other clusters.
GATEWAY_PORT = env_int("CONSOLE_GATEWAY_PORT", 9443, minimum=1, maximum=65535)
# Sessions the sync gateway serves at once; more are refused and their syncers retry later.
GATEWAY_MAX_SESSIONS = env_int("CONSOLE_GATEWAY_MAX_SESSIONS", 64, minimum=1, maximum=100000)
SERVICE_ENDPOINTS.append(("the console's sync gateway", NODE_ADDRESS, GATEWAY_PORT))

# Control Redis: Celery broker, channel layer, sync positions and heartbeats.
# The private one of `make run` listens on loopback only and requires a generated password
# (var/control-redis.password, 0600; `manage.py control_redis_config` writes its config file).
# The URL carries the password: it is never printed or logged.
CONTROL_REDIS_PORT = env_int("CONSOLE_REDIS_PORT", 6380, minimum=1, maximum=65535)
REDIS_URL = env_str("REDIS_URL")
CONTROL_REDIS_PASSWORD = ""
if not REDIS_URL:
    CONTROL_REDIS_PASSWORD = _secret_file("control-redis.password", secrets.token_urlsafe(32))
    REDIS_URL = f"redis://:{CONTROL_REDIS_PASSWORD}@127.0.0.1:{CONTROL_REDIS_PORT}/0"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "console",
    "replication",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "console.middleware.LoginRequiredMiddleware",
    "console.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "config.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.console",
            ],
        },
    },
]
WSGI_APPLICATION = None
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'console.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Celery workers and the web server write concurrently: wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not memory, so that test Celery workers (other processes) share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
elif DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A server that does not answer fails a request (and /healthz) instead of hanging it.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "console.User"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"

# Security: cookies only over HTTPS when the console is served over HTTPS.
SECURE_HTTPS = env_bool("CONSOLE_HTTPS", False)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = SECURE_HTTPS
SECURE_HSTS_SECONDS = env_int("CONSOLE_HSTS_SECONDS", 31536000 if SECURE_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HTTPS
SECURE_HSTS_PRELOAD = SECURE_HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_HTTPS else None
# Health probes (systemd, load balancers) talk plain HTTP to the ASGI server behind the proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Every page is served with this Content-Security-Policy (console.middleware): scripts, styles
# and images from the console's own static files only, no inline script, style or handler
# (data for scripts comes in `json_script` elements), sockets and fetches to the console itself.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "console.auth.ThrottledBasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["console.permissions.IsAdminOrReadOnly"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "console.exception_handlers.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # JSON only: the browsable API's pages would need inline scripts and styles (CSP below).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Bodies are JSON (Redis Enterprise's API); one media type is one to validate and document.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Replica Of Console API",
    "DESCRIPTION": "Redis Enterprise compatible REST API for databases and Replica Of.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema is for signed-in users like the rest of the API.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema.postprocess",
    ],
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the same as channels_redis'
        # blocking receive (BZPOPMIN 5 s): an idle WebSocket consumer then dies with
        # TimeoutError every few seconds. A longer read timeout still detects a dead server.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
RECONCILE_INTERVAL_S = env_int("CONSOLE_RECONCILE_INTERVAL", 5, minimum=1)

# Debug pages and error reports hide settings that hold a password inside a URL, too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "console.reporting.SafeReporting"

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "console",
    }
}
# Sign-in throttling (console.auth): failures per (account, client address) and per account
# within the window; the number of TLS proxies in front that set X-Forwarded-For.
LOGIN_FAILURE_LIMIT = env_int("CONSOLE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_ACCOUNT_FAILURE_LIMIT = env_int("CONSOLE_LOGIN_ACCOUNT_FAILURE_LIMIT", 20, minimum=1)
LOGIN_FAILURE_WINDOW_S = env_int("CONSOLE_LOGIN_FAILURE_WINDOW", 900, minimum=1)
TRUSTED_PROXIES = env_int("CONSOLE_TRUSTED_PROXIES", 0, minimum=0, maximum=10)

# Alert e-mails (replication.alerts): Django's mail settings, from the environment.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "replica-of-console@localhost")

CELERY_BEAT_SCHEDULE = {
    "reconcile": {
        "task": "console.tasks.cluster_reconcile_task",
        "schedule": float(RECONCILE_INTERVAL_S),
        "options": {"queue": "control", "expires": float(RECONCILE_INTERVAL_S) * 2},
    },
    "replica-reconcile": {
        "task": "replication.tasks.sync_reconcile_task",
        "schedule": float(RECONCILE_INTERVAL_S),
        "options": {"queue": "control", "expires": float(RECONCILE_INTERVAL_S) * 2},
    },
}
