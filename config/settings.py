"""Safar settings.

Everything that differs between a laptop and production comes from the environment.
The defaults are safe for one developer on one machine: SQLite and kombu's filesystem
broker under var/, so nothing but Python is needed. Production sets DATABASE_URL,
REDIS_URL, SECRET_KEY and ALLOWED_HOSTS; see README.md for the full list.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SAFAR_VAR_DIR", BASE_DIR / "var"))


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def envint(name: str, default: str) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", "0")

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Only ever used with DEBUG on, on a developer's machine.
    SECRET_KEY = "django-insecure-development-only-key"

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "core",  # first, so its admin templates (base_site.html) override Django's
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "knox",
    "axes",
    "csp",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "phonenumber_field",
    "import_export",
    "simple_history",
    "django_celery_beat",
    "crm",
    "journeys",
    "tickets",
    "surveys",
    "automation",
    "voc",
    "insights",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    # The calendar dates are shown in, as the staff user chose it (core.calendars).
    "core.middleware.CalendarMiddleware",
    # Under /api/: a JSON 414 for an address over API_MAX_URI_LENGTH, a JSON 400 for a NUL in it
    # (after LocaleMiddleware: the message is in the client's language).
    "core.middleware.ApiAddressMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # A broker that is down answers 503 with the reason, not 500 (core.broker).
    "core.middleware.BrokerUnavailableMiddleware",
    # Last: it answers a locked-out login with core.api.auth.lockout_response.
    "axes.middleware.AxesMiddleware",
]

# Logins: django-axes counts failures per user name and address and locks them out for a while;
# its backend must come first. API tokens (django-rest-knox) expire.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", "5")
AXES_COOLOFF_MINUTES = envint("AXES_COOLOFF_MINUTES", "15")
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "core.api.auth.lockout_response"
AXES_VERBOSE = False
API_TOKEN_TTL = timedelta(days=envint("API_TOKEN_TTL_DAYS", "30"))

# Content-Security-Policy on every page (django-csp): scripts only from our own static files (no
# inline script anywhere: the admin's, Swagger UI's split view and ours load from files); inline
# style attributes are allowed, because the server-drawn charts size their bars with them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'self'"],
    }
}
REST_KNOX = {"TOKEN_TTL": API_TOKEN_TTL, "AUTH_HEADER_PREFIX": "Token"}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'safar.sqlite3'}"),
        # Keep each worker thread's connection for a minute: opening one per request cost ~5 ms
        # and a PostgreSQL backend fork on every API call (bench/crm_bench.py). 0 closes per request.
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", "60"),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The default set-up shares one file between web, worker and beat: readers never wait for a
    # writer (WAL), a writer waits for the lock instead of failing at once (busy timeout), and a
    # transaction takes the write lock when it begins (IMMEDIATE), so it never has to be upgraded
    # mid-way, which SQLite refuses with "database is locked" without waiting.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": envint("SQLITE_BUSY_TIMEOUT_SECONDS", "30"),
        "transaction_mode": "IMMEDIATE",
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            f"PRAGMA busy_timeout={envint('SQLITE_BUSY_TIMEOUT_SECONDS', '30') * 1000};"
        ),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The same backend, with a health check that reads the socket instead of a round trip.
    DATABASES["default"]["ENGINE"] = "core.db.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Internationalisation: English plus three right-to-left languages.
LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "en")
LANGUAGES = [
    ("en", _("English")),
    ("fa", _("Persian")),
    ("ar", _("Arabic")),
    ("he", _("Hebrew")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

# E.164 storage; numbers typed without a country code are read in this region.
PHONENUMBER_DEFAULT_REGION = os.environ.get("PHONENUMBER_DEFAULT_REGION", "IR")
PHONENUMBER_DB_FORMAT = "E164"

# Email
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "0")
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", "0")
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", "30")
# Where the product is reached from outside: links in emails and survey invitations.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# Headless Chromium draws the journey map as a PNG or PDF (insights.exports).
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Safar <noreply@localhost>")
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# The support desk's address: replies to customers come from it, and the customers' answers
# reach it as support+<ticket token>@domain (tickets.tokens). SUPPORT_IMAP_URL is the mailbox
# the poller reads (imap://user:password@host:143/INBOX, imaps:// for TLS); empty: no polling.
SUPPORT_EMAIL = os.environ.get("SUPPORT_EMAIL", "support@localhost")
SUPPORT_FROM_NAME = os.environ.get("SUPPORT_FROM_NAME", "Support")
SUPPORT_IMAP_URL = os.environ.get("SUPPORT_IMAP_URL", "")
# On: the beat's poll hands the unseen messages to the worker pool in batches of 100
# (tickets.ingest_mail), so every worker process ingests; off: the poll ingests them itself.
SUPPORT_IMAP_WORKERS = envbool("SUPPORT_IMAP_WORKERS", "0")
TICKETS_ATTACHMENT_MAX_BYTES = envint("TICKETS_ATTACHMENT_MAX_BYTES", str(10 * 1024 * 1024))
# Incoming support mail (tickets.inbound): a larger message is refused and left where it was.
TICKETS_INBOUND_MAX_BYTES = envint("TICKETS_INBOUND_MAX_BYTES", str(25 * 1024 * 1024))
# POST /hooks/inbound-email/ (raw MIME, X-Safar-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
# "<t>." + body>); empty: the webhook is off. Older than the tolerance, or seen before: refused.
TICKETS_INBOUND_WEBHOOK_SECRET = os.environ.get("TICKETS_INBOUND_WEBHOOK_SECRET", "")
TICKETS_INBOUND_WEBHOOK_TOLERANCE = envint("TICKETS_INBOUND_WEBHOOK_TOLERANCE", "300")
# The customer's ticket page (/support/t/<token>/) and the contact form (/support/new/): requests
# per minute per address and per ticket link; contact-form tickets per hour per address; the
# fewest seconds a person takes to fill the form (faster is a robot); files per reply; the sites
# that may show the form in an iframe (a CSP frame-ancestors list, e.g. "'self' https://shop.example").
TICKETS_PAGE_RATE_PER_IP = envint("TICKETS_PAGE_RATE_PER_IP", "120")
TICKETS_PAGE_RATE_PER_TOKEN = envint("TICKETS_PAGE_RATE_PER_TOKEN", "30")
TICKETS_FORM_RATE_PER_IP = envint("TICKETS_FORM_RATE_PER_IP", "10")
TICKETS_FORM_MIN_SECONDS = envint("TICKETS_FORM_MIN_SECONDS", "3")
TICKETS_UPLOAD_MAX_FILES = envint("TICKETS_UPLOAD_MAX_FILES", "5")
TICKETS_FORM_FRAME_ANCESTORS = os.environ.get("TICKETS_FORM_FRAME_ANCESTORS", "'self'")

# Celery: Redis when REDIS_URL (or CELERY_BROKER_URL) is set, otherwise kombu's
# filesystem transport under var/, which needs no server on a single machine.
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "filesystem://localhost//")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    _control_dir = VAR_DIR / "celery" / "control"
    for _folder in (_queue_dir, _control_dir):
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "control_folder": str(_control_dir),
    }
else:
    # Tasks are short; no ETA may outlive the visibility timeout (kombu#337).
    # Short socket timeouts: a paused or unreachable Redis fails a publish in seconds, not never.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 3600,
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker outlives any broker outage: it reconnects forever instead of exiting after 100 tries;
# a task running when the connection drops finishes (tasks are idempotent; its message comes back).
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# A request that publishes a task waits at most about a second for a broker that is down.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The DatabaseScheduler copies these into django-celery-beat's tables, where the admin edits them.
CELERY_BEAT_SCHEDULE = {
    "surveys-send-due": {"task": "surveys.send_due", "schedule": 60.0},
    "surveys-close-pending-loops": {"task": "surveys.close_pending_loops", "schedule": 300.0},
    "surveys-remind": {"task": "surveys.remind", "schedule": 3600.0},
    "surveys-run-schedules": {"task": "surveys.run_schedules", "schedule": 24 * 3600.0},
    # Marks tickets at risk or breached and tells their assignees (tickets.tasks).
    "tickets-sla-check": {"task": "tickets.sla_check", "schedule": 60.0},
    # Reads the support mailbox (SUPPORT_IMAP_URL) into tickets (tickets.tasks).
    "tickets-poll-mailbox": {"task": "tickets.poll_mailbox", "schedule": 60.0},
    # Claims the automation runs whose time came (automation.tasks).
    "automation-claim-due": {
        "task": "automation.claim_due",
        "schedule": float(envint("AUTOMATION_CLAIM_EVERY_SECONDS", "60")),
    },
    "insights-churn": {"task": "insights.churn", "schedule": 24 * 3600.0},
    "crm-import-uploads-purge": {"task": "crm.import_uploads_purge", "schedule": 3600.0},
    # Touch summaries and credits whose task or Redis set was lost (journeys.summaries).
    "journeys-summaries-sweep": {"task": "journeys.summaries_sweep", "schedule": 300.0},
}
# Jobs whose worker died: in-doubt sends and due retries (automation), import jobs (crm).
CELERY_BEAT_SCHEDULE["automation-sweep"] = {"task": "automation.sweep", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["crm-imports-sweep"] = {"task": "crm.imports_sweep", "schedule": 60.0}
# Customer texts whose analysis task was lost or deferred (voc.tasks).
CELERY_BEAT_SCHEDULE["voc-sweep"] = {"task": "voc.sweep", "schedule": 300.0}
# Themes whose share of the comments doubled: their owners are told (voc.tasks).
CELERY_BEAT_SCHEDULE["voc-jumps"] = {"task": "voc.jumps", "schedule": 24 * 3600.0}
CELERY_BEAT_SCHEDULE["voc-suggest"] = {"task": "voc.suggest", "schedule": 24 * 3600.0}
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "0")
# One queue per deployment (or per test run sharing a Redis); workers consume it with -Q.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")

# Cache: Redis when REDIS_URL is set (throttle counters shared by every process), else memory.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "safar",
            # A paused Redis costs a request this long once; then core.throttling counts in the
            # process for a while (it fails open, with a warning in the log).
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }

# /healthz/ reports the disk of var/ as full below this many megabytes free.
HEALTHZ_MIN_FREE_MB = envint("HEALTHZ_MIN_FREE_MB", "100")

# REST API
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes a missing login a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every view states its own permissions; this default denies anything that forgets.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.AutoSchema",
    # DRF's parsers, refusing NUL characters, non-finite numbers and deep nesting with a 400.
    "DEFAULT_PARSER_CLASSES": [
        "core.api.parsers.JSONParser",
        "core.api.parsers.FormParser",
        "core.api.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "user": os.environ.get("API_USER_RATE", "6000/minute"),
        # Per ingest key; a batch request counts once.
        "ingest": os.environ.get("API_INGEST_RATE", "60000/minute"),
        # Per client address, on POST /api/v1/auth/token/ whatever the outcome.
        "login": os.environ.get("API_LOGIN_RATE", "10/minute"),
    },
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.UserRateThrottle"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Safar API",
    "DESCRIPTION": "Customer journeys, touchpoints, satisfaction and support in one CRM.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema says what the API sends: times of day, overlapping alternatives (core.api.schema).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "core.api.schema.postprocess"],
    "ENUM_NAME_OVERRIDES": {
        "LanguageEnum": "crm.choices.Language",
        "ConsentChannelEnum": "crm.choices.ConsentChannel",
        "TicketChannelEnum": "tickets.choices.Channel",
        "TicketStatusEnum": "tickets.choices.Status",
        "JourneyChannelEnum": "journeys.choices.Channel",
        "ConsentStatusEnum": "crm.choices.ConsentStatus",
        "TicketCategoryEnum": "tickets.choices.Category",
        "SurveyAnswerCategoryEnum": "surveys.choices.Category",
        "KindEnum": "surveys.choices.Kind",
        "AutomationChannelEnum": "automation.choices.Channel",
        "WorkflowStepKindEnum": "automation.choices.StepKind",
        "RewardKindEnum": "automation.models.Reward.Kind",
    },
}

# django-import-export: every import runs in one transaction, all rows or none.
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "export"
# Uploads larger than this are refused before they are parsed.
CRM_IMPORT_MAX_BYTES = envint("CRM_IMPORT_MAX_BYTES", str(20 * 1024 * 1024))
# How long a check-only import keeps its upload for a real run (personal data: not longer).
CRM_IMPORT_KEEP_HOURS = envint("CRM_IMPORT_KEEP_HOURS", "24")
# Bounds of what an import reads: rows, columns, and how far an XLSX (a zip of XML) may unpack.
CRM_IMPORT_MAX_ROWS = envint("CRM_IMPORT_MAX_ROWS", "200000")
CRM_IMPORT_MAX_COLUMNS = envint("CRM_IMPORT_MAX_COLUMNS", "100")
CRM_IMPORT_MAX_EXPANDED_BYTES = envint("CRM_IMPORT_MAX_EXPANDED_BYTES", str(120 * 1024 * 1024))

# Event ingestion: items per request, request body size, and how far ahead of the server's clock
# a client's timestamp may be.
JOURNEYS_MAX_BATCH = envint("JOURNEYS_MAX_BATCH", "10000")
JOURNEYS_MAX_BODY_BYTES = envint("JOURNEYS_MAX_BODY_BYTES", str(20 * 1024 * 1024))
JOURNEYS_FUTURE_SKEW_SECONDS = envint("JOURNEYS_FUTURE_SKEW_SECONDS", "300")

# The garbage collector of web and Celery worker processes (config/process.py): the young
# generation is collected every this many allocations (Python's default: 700); 0 leaves the
# collector as Python sets it.
GC_GEN0_THRESHOLD = envint("GC_GEN0_THRESHOLD", "5000")

# Surveys: nobody is asked more than once in this many days; public page requests per minute.
SURVEYS_BUDGET_DAYS = envint("SURVEYS_BUDGET_DAYS", "30")
SURVEYS_RATE_PER_IP = envint("SURVEYS_RATE_PER_IP", "120")
SURVEYS_RATE_PER_TOKEN = envint("SURVEYS_RATE_PER_TOKEN", "20")
# A score clicked in an email can be changed on the page that follows for this many minutes; its
# closed loop (event, follow-up ticket) waits until then.
SURVEYS_SCORE_CHANGE_MINUTES = envint("SURVEYS_SCORE_CHANGE_MINUTES", "5")

# Automation. SMS and push backends: console, file (var/outbox/), http (a provider's API at
# AUTOMATION_<CHANNEL>_URL with AUTOMATION_<CHANNEL>_KEY) or a dotted path to your own class.
AUTOMATION_SMS_BACKEND = os.environ.get("AUTOMATION_SMS_BACKEND", "file")
AUTOMATION_SMS_URL = os.environ.get("AUTOMATION_SMS_URL", "")
AUTOMATION_SMS_KEY = os.environ.get("AUTOMATION_SMS_KEY", "")
AUTOMATION_PUSH_BACKEND = os.environ.get("AUTOMATION_PUSH_BACKEND", "file")
AUTOMATION_PUSH_URL = os.environ.get("AUTOMATION_PUSH_URL", "")
AUTOMATION_PUSH_KEY = os.environ.get("AUTOMATION_PUSH_KEY", "")
# Providers sign delivery reports with this (HMAC-SHA256); empty refuses every report.
AUTOMATION_WEBHOOK_SECRET = os.environ.get("AUTOMATION_WEBHOOK_SECRET", "")
AUTOMATION_WEBHOOK_TOLERANCE = envint("AUTOMATION_WEBHOOK_TOLERANCE", "300")
# Marketing messages go out between these local hours (contact's time zone), never on their weekend.
AUTOMATION_QUIET_START = envint("AUTOMATION_QUIET_START", "21")
AUTOMATION_QUIET_END = envint("AUTOMATION_QUIET_END", "9")
# Per channel: at most (per local day, per rolling 7 days).
AUTOMATION_CAPS = {
    "email": (envint("AUTOMATION_EMAIL_DAILY", "2"), envint("AUTOMATION_EMAIL_WEEKLY", "5")),
    "sms": (envint("AUTOMATION_SMS_DAILY", "1"), envint("AUTOMATION_SMS_WEEKLY", "2")),
    "push": (envint("AUTOMATION_PUSH_DAILY", "1"), envint("AUTOMATION_PUSH_WEEKLY", "4")),
}
# A run handed to a worker that never reported back (the worker died) is claimed again after this.
AUTOMATION_CLAIM_TIMEOUT_SECONDS = envint("AUTOMATION_CLAIM_TIMEOUT_SECONDS", "300")
# Dead workers are found by heartbeats, not by the broker: a chunk beats every 30 s and a run
# silent for AUTOMATION_CLAIM_TIMEOUT_SECONDS is claimed again; an import beats with its progress
# and one silent for CRM_IMPORT_STALE_SECONDS (its lock free) is requeued. Both are far below the
# Redis visibility_timeout (3600 s), the backstop that redelivers an unacknowledged task, which
# must outlast the longest task (a 20 MB import: minutes) and any countdown. docs/architecture.md.
CRM_IMPORT_STALE_SECONDS = envint("CRM_IMPORT_STALE_SECONDS", "180")
AUTOMATION_REFERRAL_REWARD_STAGE = os.environ.get("AUTOMATION_REFERRAL_REWARD_STAGE", "purchase")
AUTOMATION_REFERRAL_REWARD_AMOUNT = os.environ.get("AUTOMATION_REFERRAL_REWARD_AMOUNT", "10.00")
AUTOMATION_REFERRAL_LANDING_URL = os.environ.get("AUTOMATION_REFERRAL_LANDING_URL", SITE_URL + "/")
# Under /api/, a longer address (path and query string) is a JSON 414 (core.middleware). Below
# gunicorn's own request-line limit (4094 bytes, a plain 400), so the API answers it first.
API_MAX_URI_LENGTH = envint("API_MAX_URI_LENGTH", "4000")
# The largest request body read at all: the events endpoint's documented limit (a larger one is a
# JSON 413 under /api/, core.errors).
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", str(JOURNEYS_MAX_BODY_BYTES))

# Security: production values unless DEBUG is on.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "0" if DEBUG else "1")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000")
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "0")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if envbool("SECURE_HSTS_PRELOAD", "0") is False:
    # check --deploy warns about preload; it is a deliberate opt-in (it is hard to undo).
    SILENCED_SYSTEM_CHECKS = ["security.W021"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
