"""Settings, read once from the environment and validated here.

Every variable is documented in README.md and deploy/env.example. With nothing
set the product runs on one machine: SQLite and files under ./var, Celery on a
filesystem broker, an in-process cache. With DATABASE_URL set (a production
database) nothing is guessed: SECRET_KEY and REDIS_URL must be set too.
Importing this module writes no files (deploy/run-local.sh and `manage.py
embedded_init` make what the embedded default needs).
"""

import ipaddress
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BIZTEL_VAR_DIR", BASE_DIR / "var"))


def envbool(name, default):
    value = os.environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name, default):
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def envlist(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def envnetworks(name, default=""):
    try:
        return [ipaddress.ip_network(cidr, strict=False) for cidr in envlist(name, default)]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def storage_url_valid(value):
    """file:///absolute/path or s3://bucket[/prefix] (also checked by manage.py storage_copy --to)."""
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        return False
    if parts.scheme == "file":
        return parts.netloc in ("", "localhost") and parts.path.startswith("/")
    return parts.scheme == "s3" and re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", parts.netloc) is not None


def envstorageurl(name):
    """'' (the disk under MEDIA_ROOT), file:///absolute/path or s3://bucket[/prefix]."""
    value = os.environ.get(name, "").strip()
    if value and not storage_url_valid(value):
        raise ImproperlyConfigured(f"{name} must be file:///absolute/path or s3://bucket[/prefix], not {value!r}")
    return value


def envchoice(name, choices, default=""):
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def envurl(name):
    value = os.environ.get(name, "").strip()
    if value and not (urlsplit(value).scheme in ("http", "https") and urlsplit(value).netloc):
        raise ImproperlyConfigured(f"{name} must be an http:// or https:// URL, not {value!r}")
    return value


DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
# The embedded default: no database server, no Redis, one machine.
EMBEDDED = not DATABASE_URL and not REDIS_URL
if DATABASE_URL:
    # A production database: a made-up key or an in-process cache and a file broker
    # there would be silently wrong (sessions lost, limits per process), so refuse.
    _missing = [name for name in ("SECRET_KEY", "REDIS_URL") if not os.environ.get(name)]
    if _missing:
        raise ImproperlyConfigured(
            f"{' and '.join(_missing)} must be set when DATABASE_URL is (a production installation; "
            "see deploy/env.example)"
        )


def embedded_secret_key():
    # A single-machine install has nobody to set SECRET_KEY: `manage.py embedded_init`
    # (run by deploy/run-local.sh) made one, once, in the var folder.
    path = VAR_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    # Not made yet (a first `manage.py` before `make run`): this process alone uses it.
    return "embedded-unset-" + secrets.token_urlsafe(50)


DEBUG = envbool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or embedded_secret_key()
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
# nginx terminates TLS and says so in X-Forwarded-Proto (deploy/nginx.conf).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "biztel.apps.GuardedAdminConfig",  # django.contrib.admin with the two-factor login (biztel/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "biztel",
    "recordings",
    "callactions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "biztel.urls"
WSGI_APPLICATION = "biztel.wsgi.application"
AUTH_USER_MODEL = "biztel.Account"
LOGIN_URL = "admin:login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "biztel" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if DATABASE_URL:
    # Health checks: a connection the server dropped (restart, failover, terminated) is
    # replaced at the next request or task instead of failing it.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # The same backend with a health check that needs no round trip while the
        # connection is fine (biztel/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "biztel.postgresql"
        # Server-side binding lets psycopg prepare a statement after a few runs: planning
        # the download's index lookups costs more than running them.
        DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    _redis_cache = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "biztel"),
    }
    # Heartbeats (biztel/health.py) go where every process sees them: Redis here.
    CACHES = {"default": _redis_cache, "heartbeats": _redis_cache}
else:
    # One process only (deploy/run-local.sh starts a single web worker), so an
    # in-process counter is the whole server's counter. The worker's and beat's
    # heartbeats must reach the web process: files (made on first write).
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "heartbeats": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": VAR_DIR / "heartbeats",
        },
    }

# django-ratelimit refuses an in-process cache: right for several web processes,
# and the embedded default has exactly one.
SILENCED_SYSTEM_CHECKS = [] if REDIS_URL else ["django_ratelimit.E003"]
RATELIMIT_USE_CACHE = "default"

# --- Administration security (SPEC.md §10; README "Administration security") ---
# Login lockout (django-axes): 5 failures of one username from one address lock that
# pair for 15 minutes, the right password included; other usernames from that address
# and that username from other addresses still get in. The address is the one the
# access log records (X-Real-IP from the nginx on this machine, else the peer).
AUTHENTICATION_BACKENDS = [
    "biztel.admin_site.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
# Attempts while locked do not push the end of the lockout further out: locked for 15 minutes,
# not for as long as an attacker keeps trying.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_CLIENT_IP_CALLABLE = "biztel.public.client_ip"
AXES_VERBOSE = False  # no banner on every start of every command; lockouts are still logged
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Two-factor sign-in (django-otp): staff with an authenticator always give its code; with this
# on, every staff account must have one (deploy/env.example turns it on).
ADMIN_2FA_REQUIRED = envbool("ADMIN_2FA_REQUIRED", False)
OTP_TOTP_ISSUER = "biztel"  # the name authenticator apps show beside the account
# Cookies and HSTS behind TLS (deploy/env.example turns them on); off by default so the
# embedded default works over plain HTTP. Django sends HSTS only on HTTPS requests.
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", False)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # the admin's forms carry the token in the page; no script reads the cookie
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
# nginx listens on TLS only (deploy/nginx.conf), so nothing arrives over plain HTTP to
# redirect; SPEC.md §6: the application redirects only when SECURE_SSL_REDIRECT=true.
SILENCED_SYSTEM_CHECKS.append("security.W008")

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Tokyo")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

# Storage of the recordings (recordings/storage.py, SPEC.md §9): the disk (unset: MEDIA_ROOT;
# file:///path) or an S3-compatible bucket (s3://bucket[/prefix]) shared by every node.
# With a bucket, MEDIA_ROOT is only this node's scratch space (.incoming).
STORAGE_URL = envstorageurl("STORAGE_URL")
AWS_S3_ENDPOINT_URL = envurl("AWS_S3_ENDPOINT_URL")
# Unset keys: boto3 finds credentials itself (instance profile, ~/.aws).
AWS_ACCESS_KEY_ID = os.environ.get("AWS_ACCESS_KEY_ID", "").strip()
AWS_SECRET_ACCESS_KEY = os.environ.get("AWS_SECRET_ACCESS_KEY", "").strip()
if bool(AWS_ACCESS_KEY_ID) != bool(AWS_SECRET_ACCESS_KEY):
    raise ImproperlyConfigured("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
AWS_S3_REGION_NAME = os.environ.get("AWS_S3_REGION_NAME", "").strip()
STORAGE_S3_SSE = envchoice("STORAGE_S3_SSE", ("AES256", "aws:kms"))
STORAGE_S3_KMS_KEY_ID = os.environ.get("STORAGE_S3_KMS_KEY_ID", "").strip()
if STORAGE_S3_KMS_KEY_ID and STORAGE_S3_SSE != "aws:kms":
    raise ImproperlyConfigured("STORAGE_S3_KMS_KEY_ID needs STORAGE_S3_SSE=aws:kms")

# Ingest
INGEST_MAX_UPLOAD_BYTES = envint("INGEST_MAX_UPLOAD_BYTES", 512 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Download: when nginx fronts the application (deploy/), Django authorises and
# counts, then hands the bytes to nginx through this internal location.
DOWNLOAD_ACCEL_REDIRECT_PREFIX = os.environ.get("DOWNLOAD_ACCEL_REDIRECT_PREFIX", "")

# Call actions: destinations on loopback, private or link-local networks are
# refused unless listed here.
CALLACTION_ALLOWED_NETWORKS = envnetworks("CALLACTION_ALLOWED_NETWORKS")

# Operations (README → Operations): who may read /metrics, by the client address the
# access log records (behind nginx, X-Real-IP).
METRICS_ALLOWED_NETWORKS = envnetworks("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")

# Celery
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # Publishing fails at once when Redis is down instead of holding the caller for
    # seconds: the call-action event stays pending and the sweep queues it later.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 0}
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "data_folder_processed": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
    }
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup otherwise closes the database connection around every task;
# reconnecting costs more than a whole call-action delivery. A dropped connection is
# still replaced before the next task (biztel/celery.py, CONN_HEALTH_CHECKS).
CELERY_DB_REUSE_MAX = 500
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Beat's own file-backed scheduler, recording the tick /readyz looks for.
CELERY_BEAT_SCHEDULER = "biztel.health:HeartbeatScheduler"
CELERY_BEAT_SCHEDULE = {
    "purge-due-files": {
        "task": "recordings.tasks.purge_due_files",
        "schedule": crontab(minute=5),
    },
    "sweep-pending-events": {
        "task": "callactions.tasks.sweep_pending_events",
        "schedule": 30.0,
    },
    "build-nightly-archive": {
        "task": "recordings.tasks.build_yesterdays_archive",
        "schedule": crontab(hour=0, minute=30),
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "biztel.errors.drf_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # `format` is the download's own parameter (mp3|flac|wav, SPEC.md §7), not DRF's renderer
    # choice; the schema view reads it itself (biztel/openapi.py).
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stereo recording gateway API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The public API only (SPEC.md §3.5); the PBX's ingest endpoint is documented in README.
    "PREPROCESSING_HOOKS": ["biztel.openapi.public_endpoints_only"],
    "SCHEMA_PATH_PREFIX": r"/public/api/v[0-9]+",
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "TokenAuth": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Token <80 hex characters>`, issued in admin or by `manage.py create_api_token`.",
            }
        }
    },
    "SECURITY": [{"TokenAuth": []}],
    # The docs page loads Swagger UI from this server (collectstatic), never from a CDN:
    # customers' servers often have no way out to the internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
