"""Settings for MazeVault Certificates.

This module is the only reader of ``os.environ`` (12-factor). Every default gives a working
embedded install (SQLite under ``MAZEVAULT_DATA_DIR``, a file-based Celery broker, a KEK kept
in the data directory); ``MAZEVAULT_ENV=production`` refuses to start without an explicit
``DJANGO_SECRET_KEY`` and ``MAZEVAULT_KEK``.
"""
from __future__ import annotations

import base64
import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


VERSION = "0.1.0"
MAZEVAULT_ENV = env_str("MAZEVAULT_ENV", "development")
PRODUCTION = MAZEVAULT_ENV == "production"
# Under pytest (or MAZEVAULT_TESTING=1) with no broker configured, tasks run eagerly.
TESTING = env_bool("MAZEVAULT_TESTING", "pytest" in (sys.argv[0] if sys.argv else ""))
CI = env_bool("CI", False)

DATA_DIR = Path(env_str("MAZEVAULT_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _local_secret(filename: str, make) -> str:
    """A secret generated once and kept in the data directory (embedded/dev mode only)."""
    path = DATA_DIR / filename
    if path.exists():
        return path.read_text().strip()
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


SECRET_KEY = env_str("DJANGO_SECRET_KEY")
_kek_text = env_str("MAZEVAULT_KEK")
if PRODUCTION and (not SECRET_KEY or not _kek_text):
    raise ImproperlyConfigured("production needs DJANGO_SECRET_KEY and MAZEVAULT_KEK")
if not SECRET_KEY:
    SECRET_KEY = _local_secret("secret_key", lambda: secrets.token_urlsafe(50))
if not _kek_text:
    _kek_text = _local_secret("kek", lambda: base64.b64encode(secrets.token_bytes(32)).decode())


def _decode_kek(text: str, name: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be base64 of 32 bytes") from exc
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{name} must be base64 of 32 bytes, got {len(raw)}")
    return raw


MAZEVAULT_KEK = _decode_kek(_kek_text, "MAZEVAULT_KEK")
# Retired KEKs stay readable during rotation: comma-separated base64 values.
MAZEVAULT_OLD_KEKS = [_decode_kek(k, "MAZEVAULT_OLD_KEKS") for k in env_list("MAZEVAULT_OLD_KEKS", [])]
# The audit chain's checkpoints are signed with an Ed25519 key derived from this secret, or from the KEK
# when it is empty (docs/audit.md); neither is ever stored in the database.
_audit_key_text = env_str("MAZEVAULT_AUDIT_KEY")
MAZEVAULT_AUDIT_KEY = _decode_kek(_audit_key_text, "MAZEVAULT_AUDIT_KEY") if _audit_key_text.strip() else None
MAZEVAULT_OLD_AUDIT_KEYS = [_decode_kek(k, "MAZEVAULT_OLD_AUDIT_KEYS")
                            for k in env_list("MAZEVAULT_OLD_AUDIT_KEYS", [])]

DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"] if not PRODUCTION else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

PORT = env_int("PORT", 8000)
MAZEVAULT_PUBLIC_URL = env_str("MAZEVAULT_PUBLIC_URL", f"http://localhost:{PORT}").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally: no CDN on closed networks
    "mazevault",
    "certificates",
    "crl",
    "acme",
]

# WSGI wrappers applied around Django's application by mazevault/wsgi.py (innermost first).
WSGI_FAST_PATHS = ["crl.ocsp_wsgi.ocsp_fast_path"]

MIDDLEWARE = [
    "mazevault.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves STATIC_ROOT (admin, Swagger UI) from gunicorn itself: no separate static server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mazevault.urls"
WSGI_APPLICATION = "mazevault.wsgi.application"
APPEND_SLASH = False

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
            ],
        },
    },
]

_default_db = f"sqlite:///{DATA_DIR / 'mazevault.sqlite3'}"
DATABASE_URL = env_str("DATABASE_URL", _default_db) or _default_db
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "mazevault_cache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAZEVAULT_MAX_UPLOAD_BYTES", 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
MAZEVAULT_MAX_UPLOAD_BYTES = DATA_UPLOAD_MAX_MEMORY_SIZE
MAZEVAULT_MAX_BUNDLE_ENTRIES = env_int("MAZEVAULT_MAX_BUNDLE_ENTRIES", 500)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- REST API -----------------------------------------------------------------------------
MAZEVAULT_RATE_LIMIT_AUTH = env_str("MAZEVAULT_RATE_LIMIT_AUTH", "10/min")
MAZEVAULT_RATE_LIMIT_API = env_str("MAZEVAULT_RATE_LIMIT_API", "100/min")
MAZEVAULT_RATE_LIMIT_OCSP = env_str("MAZEVAULT_RATE_LIMIT_OCSP", "1000/min")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "mazevault.authentication.BearerTokenAuthentication",
        "mazevault.authentication.CsrfSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["mazevault.throttling.ApiRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["mazevault.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PAGINATION_CLASS": "mazevault.api.pagination.PagePagination",
    "DEFAULT_FILTER_BACKENDS": ["mazevault.api.filtering.StrictFilterBackend"],  # unknown list parameters: 400
    "DEFAULT_SCHEMA_CLASS": "mazevault.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "mazevault.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%SZ",
    "PAGE_SIZE": 25,
    # ``?format=`` is a query parameter of our own endpoints (CA certificate, export), not a
    # renderer switch.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "MazeVault Certificates API",
    "DESCRIPTION": "Certificate authority and certificate lifecycle management.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # One component per choice set (several serializers share them); strings are imported lazily.
    "ENUM_NAME_OVERRIDES": {
        "EnvironmentEnum": "mazevault.models.Environment",
        "RoleEnum": "mazevault.rbac.Role",
        "SeverityEnum": "mazevault.models.Severity",
        "CertificateStatusEnum": "certificates.models.CertificateStatus",
        "CAStatusEnum": "certificates.models.CAStatus",
        "RevocationReasonEnum": ["unspecified", "keyCompromise", "caCompromise", "affiliationChanged", "superseded",
                                 "cessationOfOperation", "certificateHold"],
        "KeyTypeEnum": "certificates.pki.keys.KEY_TYPES",
        "CAKeyTypeEnum": "certificates.api.serializers.CA_KEY_TYPES",
        "HealthStatusEnum": [("ok", "ok"), ("degraded", "degraded")],
        "EabCredentialStatusEnum": [("active", "active"), ("revoked", "revoked"), ("expired", "expired")],
        "AcmeAccountStatusEnum": "acme.models.AccountStatus",
    },
    # The Bearer scheme ("BearerAuth") comes from the extension in mazevault/api/schema.py.
    "AUTHENTICATION_WHITELIST": ["mazevault.authentication.BearerTokenAuthentication"],
}

# --- Celery ---------------------------------------------------------------------------------
_broker_dir = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_EMBEDDED_BROKER = not CELERY_BROKER_URL
if CELERY_EMBEDDED_BROKER:
    # A Kombu transport that runs on plain files: the embedded install needs no broker server.
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),  # kombu defaults to ./control in the cwd
    }
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or (None if CELERY_EMBEDDED_BROKER else CELERY_BROKER_URL)
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
# Tests without a configured broker run tasks eagerly (a contributor can run them anywhere).
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", TESTING and CELERY_EMBEDDED_BROKER)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "crl.*": {"queue": "crl"},
    "rotation.*": {"queue": "rotation"},
    "acme.*": {"queue": "acme"},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Seconds between two runs of the audit sealer's safety net in beat (docs/audit.md).
MAZEVAULT_AUDIT_SEAL_SECONDS = max(1, env_int("MAZEVAULT_AUDIT_SEAL_SECONDS", 5))
CELERY_BEAT_SCHEDULE = {
    "certificates.sweep_expired": {
        "task": "certificates.sweep_expired",
        # MAZEVAULT_EXPIRY_SWEEP_SECONDS, when set, wins (the embedded-mode test watches beat fire in seconds).
        "schedule": timedelta(seconds=env_int(
            "MAZEVAULT_EXPIRY_SWEEP_SECONDS", 60 * env_int("MAZEVAULT_EXPIRY_SWEEP_MINUTES", 5))),
    },
    # OCSP (crl/ocsp_tasks.py): delegated responders renewed well before they expire (docs/ocsp.md).
    "crl.renew_ocsp_responders": {"task": "crl.renew_ocsp_responders", "schedule": timedelta(hours=1)},
    "crl.purge_ocsp_cache": {"task": "crl.purge_ocsp_cache", "schedule": timedelta(hours=1)},
    "mazevault.purge_idempotency_keys": {
        "task": "mazevault.purge_idempotency_keys",
        "schedule": crontab(minute=17),
    },
    # The safety net of the audit sealer: every commit that records events already queues a seal
    # (docs/audit.md); this catches what a lost message or a broker outage left unsealed.
    "mazevault.seal_audit_log": {
        "task": "mazevault.seal_audit_log",
        "schedule": timedelta(seconds=MAZEVAULT_AUDIT_SEAL_SECONDS),
    },
    # CRLs before their interval ends or nextUpdate nears (docs/crl.md); cheap when nothing is due.
    # Expired nonces deleted; stale orders and authorizations marked invalid/expired (RFC 8555 7.1.3, 7.1.4).
    "acme.clean_up": {
        "task": "acme.clean_up",
        "schedule": timedelta(seconds=env_int("MAZEVAULT_ACME_CLEANUP_SECONDS", 300)),
    },
    "crl.publish_due": {
        "task": "crl.publish_due",
        "schedule": timedelta(seconds=env_int("MAZEVAULT_CRL_CHECK_SECONDS", 60)),
    },
}

# --- MazeVault behaviour ----------------------------------------------------------------------
MAZEVAULT_INTERNAL_SUFFIXES = env_list("MAZEVAULT_INTERNAL_SUFFIXES", [".local", ".internal", ".lan", ".corp"])
MAZEVAULT_DEMO_ADMIN_PASSWORD = env_str("MAZEVAULT_DEMO_ADMIN_PASSWORD")
MAZEVAULT_DEMO_OPERATOR_PASSWORD = env_str("MAZEVAULT_DEMO_OPERATOR_PASSWORD")
MAZEVAULT_IDEMPOTENCY_TTL_HOURS = env_int("MAZEVAULT_IDEMPOTENCY_TTL_HOURS", 24)
# A claim on an Idempotency-Key whose work has not committed after this long is taken over by a retry.
MAZEVAULT_IDEMPOTENCY_LEASE_SECONDS = env_int("MAZEVAULT_IDEMPOTENCY_LEASE_SECONDS", 60)
MAZEVAULT_TOKEN_TOUCH_SECONDS = env_int("MAZEVAULT_TOKEN_TOUCH_SECONDS", 60)
MAZEVAULT_MAX_TOKEN_DAYS = env_int("MAZEVAULT_MAX_TOKEN_DAYS", 366)
# A token created without a duration gets this lifetime (never "forever"), capped by the maximum.
MAZEVAULT_DEFAULT_TOKEN_DAYS = min(env_int("MAZEVAULT_DEFAULT_TOKEN_DAYS", 90), MAZEVAULT_MAX_TOKEN_DAYS)
MAZEVAULT_TRUSTED_PROXIES = env_int("MAZEVAULT_TRUSTED_PROXIES", 0)
# A signed audit checkpoint (chain length + head hash) is kept at most this often (docs/audit.md).
MAZEVAULT_AUDIT_CHECKPOINT_SECONDS = max(1, env_int("MAZEVAULT_AUDIT_CHECKPOINT_SECONDS", 300))
# A burst of revocations within this many seconds publishes one set of CRLs (docs/crl.md).
MAZEVAULT_CRL_COALESCE_SECONDS = env_int("MAZEVAULT_CRL_COALESCE_SECONDS", 2)
# Cache-Control max-age of a CRL download: the time to its nextUpdate, at most this (docs/crl.md).
MAZEVAULT_CRL_MAX_AGE_SECONDS = env_int("MAZEVAULT_CRL_MAX_AGE_SECONDS", 300)

# --- ACME (docs/acme.md) ------------------------------------------------------------------------
# Where the validator connects for http-01 and tls-alpn-01 (RFC 8555 8.3: port 80; RFC 8737 3: port 443);
# tests and internal networks point them elsewhere.
MAZEVAULT_ACME_HTTP01_PORT = env_int("MAZEVAULT_ACME_HTTP01_PORT", 80)
MAZEVAULT_ACME_TLSALPN01_PORT = env_int("MAZEVAULT_ACME_TLSALPN01_PORT", 443)
# host[:port] of the DNS servers every validation lookup asks (A/AAAA, TXT, CAA); empty: the system's resolver.
MAZEVAULT_ACME_DNS_RESOLVERS = env_list("MAZEVAULT_ACME_DNS_RESOLVERS", [])
# Networks the validator may connect to; empty: everything but link-local and cloud-metadata addresses.
MAZEVAULT_ACME_VALIDATION_NETWORKS = env_list("MAZEVAULT_ACME_VALIDATION_NETWORKS", [])
# Issuer domain names a CAA "issue" property must name (RFC 8659); empty: the host of MAZEVAULT_PUBLIC_URL.
MAZEVAULT_ACME_CAA_IDENTITIES = env_list("MAZEVAULT_ACME_CAA_IDENTITIES", [])
MAZEVAULT_ACME_VALIDATION_TIMEOUT_SECONDS = env_int("MAZEVAULT_ACME_VALIDATION_TIMEOUT_SECONDS", 10)
# A failed validation is tried again this many times in all, this many seconds apart, before it is final.
MAZEVAULT_ACME_VALIDATION_ATTEMPTS = env_int("MAZEVAULT_ACME_VALIDATION_ATTEMPTS", 3)
MAZEVAULT_ACME_VALIDATION_RETRY_SECONDS = env_int("MAZEVAULT_ACME_VALIDATION_RETRY_SECONDS", 2)
MAZEVAULT_ACME_NONCE_TTL_SECONDS = env_int("MAZEVAULT_ACME_NONCE_TTL_SECONDS", 3600)
MAZEVAULT_ACME_ORDER_TTL_HOURS = env_int("MAZEVAULT_ACME_ORDER_TTL_HOURS", 24)
MAZEVAULT_ACME_AUTHZ_TTL_HOURS = env_int("MAZEVAULT_ACME_AUTHZ_TTL_HOURS", 24)
# Retry-After (seconds) on an order that waits for approval or on a challenge being validated.
MAZEVAULT_ACME_RETRY_AFTER_SECONDS = env_int("MAZEVAULT_ACME_RETRY_AFTER_SECONDS", 5)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
