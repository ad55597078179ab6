"""Glow's one settings module: embedded defaults, switched to production by environment variables."""

from decimal import Decimal
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("GLOW_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

# Production is whatever points at real services; everything else is the embedded profile.
DATABASE_URL = env.str("DATABASE_URL", default="")
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
GLOW_PROFILE = "production" if (DATABASE_URL or CELERY_BROKER_URL) else "embedded"

DEBUG = env.bool("DEBUG", default=GLOW_PROFILE == "embedded")
SECRET_KEY = env.str(
    "SECRET_KEY",
    default="glow-embedded-development-key-not-for-production-7f3c9a1e5b2d4c6e8a0b",
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_eventstream",
    "glow.core",
    "glow.accounts",
    "glow.catalog",
    "system",
    "attempts",
    "tests_app",
    # Issue 24: LTI 1.3 (django-lti's models and PyLTI1p3 underneath, Glow's side in lti/).
    "lti_tool",
    "lti",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "system.middleware.StaffSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "glow.core.security.ContentSecurityPolicyMiddleware",
    "glow.core.errors.DatabaseUnavailableMiddleware",
    # Innermost: lets the LMS that launched a session frame its learner pages.
    "lti.middleware.LtiFrameMiddleware",
]

AUTHENTICATION_BACKENDS = ["glow.accounts.backends.UsernameOrEmailBackend"]
GLOW_LOGIN_MAX_FAILURES = env.int("GLOW_LOGIN_MAX_FAILURES", default=5)
GLOW_LOGIN_LOCKOUT_SECONDS = env.int("GLOW_LOGIN_LOCKOUT_SECONDS", default=15 * 60)

# Throttles and cached decrypts must agree across web processes: Redis when there is one.
CACHE_URL = env.str("CACHE_URL", default="")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL or REDIS_URL,
        "KEY_PREFIX": "glow",
    }
    if (CACHE_URL or REDIS_URL)
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

ROOT_URLCONF = "glow.urls"
WSGI_APPLICATION = "glow.wsgi.application"
ASGI_APPLICATION = "glow.asgi.application"

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

if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    IS_POSTGRES = "postgresql" in DATABASES["default"]["ENGINE"]
    if "sqlite" in DATABASES["default"]["ENGINE"]:
        # A SQLite file named by URL gets what the embedded one has: WAL, an up-front write lock.
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            }
        )
    if IS_POSTGRES and env.bool("GLOW_DB_POOL", default=False):
        # The ASGI web process (glow/asgi.py turns this on) runs each request's sync part in a
        # thread of its own, so a per-thread persistent connection is never reused: every
        # request would connect anew (~5 ms) and leave its connection to the garbage collector.
        # A pool per process hands connections from thread to thread instead (psycopg's pool:
        # PostgreSQL only).
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
            "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        }
    else:
        DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "glow.sqlite3",
            # WAL lets the SSE readers and the worker thread read while a request writes;
            # IMMEDIATE takes the write lock up front instead of failing mid-transaction.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if GLOW_PROFILE == "production"
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# JSON bodies above this answer 413; file uploads have their own limit (GLOW_UPLOAD_MAX_BYTES).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
GLOW_UPLOAD_MAX_BYTES = env.int("GLOW_UPLOAD_MAX_BYTES", default=25 * 1024 * 1024)
# Requests per API key (or signed-in user): generation is scarce, reads are generous.
GLOW_THROTTLE_RATES = {
    "generate": env.str("GLOW_THROTTLE_GENERATE", default="60/min"),
    "ai": env.str("GLOW_THROTTLE_AI", default="300/min"),
    "read": env.str("GLOW_THROTTLE_READ", default="1200/min"),
}

# One sign-in page for learners and staff (Django's auth views under /accounts/).
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/learn/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# Password-reset mail: printed to the console in the embedded profile; SMTP when EMAIL_URL is set.
if env.str("EMAIL_URL", default=""):
    globals().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="glow@localhost")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "glow.accounts.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["glow.accounts.auth.HasProfile"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "glow.core.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["glow.core.throttling.GlowRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Glow API",
    # In backticks: Swagger UI reads the description as Markdown, where <family> is an HTML tag.
    "DESCRIPTION": "Practise hard conversations against AI-simulated people. Every op is a POST "
    "with a JSON body under `/api/v5/artifacts/{family}/{op}`; `watch` also answers GET.",
    "VERSION": "5.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    # The docs page shows one family's ops; its request and answer shapes open under each op,
    # so the list of every component (hundreds, slow to lay out) is not drawn.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "defaultModelsExpandDepth": -1},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets that share a field name with another set: named here, not by a hash suffix.
    "ENUM_NAME_OVERRIDES": {
        "TextOnlyModalityEnum": [("text", "text")],
        "InvocationStatusEnum": "tests_app.models.InvocationStatus",
        "FieldTypeEnum": "glow.catalog.models.FieldType",
        "ModalityEnum": "glow.catalog.models.Modality",
        "AttemptStatusEnum": "attempts.models.AttemptStatus",
        "TestStatusEnum": "tests_app.models.TestStatus",
        "ProviderEnum": "glow.catalog.models.Provider",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "glow.core.schema.document_error_responses",
        "glow.core.schema.close_request_bodies",
        "glow.core.schema_tags.describe_family_tags",
        "glow.core.schema.describe_uploads",
    ],
}

# Celery: a broker means real workers; without one, work runs off the request thread in-process.
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A message a lost worker took is redelivered after visibility_timeout: keep it above the longest task.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Lets test runs and benchmarks share one Redis without taking each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# "thread" (embedded default), "inline" (unit tests) or "celery" (whenever a broker is set).
GLOW_TASK_MODE = env.str("GLOW_TASK_MODE", default="celery" if CELERY_BROKER_URL else "thread")

# django-eventstream: merely defining EVENTSTREAM_REDIS turns Redis mode on, so only production does.
if REDIS_URL:
    from redis.connection import parse_url

    # django-eventstream passes these straight to redis.Redis(**...), which takes no URL.
    EVENTSTREAM_REDIS = parse_url(REDIS_URL)
    EVENTSTREAM_STORAGE_CLASS = env.str(
        "EVENTSTREAM_STORAGE_CLASS", default="django_eventstream.storage.DjangoModelStorage"
    )
else:
    EVENTSTREAM_STORAGE_CLASS = "django_eventstream.storage.DjangoModelStorage"
EVENTSTREAM_ALLOW_ORIGINS = env.list("EVENTSTREAM_ALLOW_ORIGINS", default=[])

# AI: the offline simulator unless told otherwise; OpenAI-compatible defaults for catalog.AIModel rows.
GLOW_AI_PROVIDER = env.str("GLOW_AI_PROVIDER", default="local")
# Seconds between the offline simulator's streamed chunks (about three words each): a typing pace
# in the embedded profile so streaming and Stop are real in `make run`; none in production or tests.
GLOW_LOCAL_STREAM_DELAY = env.float(
    "GLOW_LOCAL_STREAM_DELAY", default=0.07 if GLOW_PROFILE == "embedded" else 0.0
)
# The title of the catalog Model that persona replies, hints, grades and generation use when
# they name none (each organization's own row of that title); empty: GLOW_AI_PROVIDER.
GLOW_AI_MODEL = env.str("GLOW_AI_MODEL", default="")
GLOW_OPENAI_BASE_URL = env.str("GLOW_OPENAI_BASE_URL", default="https://api.openai.com/v1")
GLOW_OPENAI_API_KEY_ENV = env.str("GLOW_OPENAI_API_KEY_ENV", default="OPENAI_API_KEY")
GLOW_OPENAI_TIMEOUT = env.float("GLOW_OPENAI_TIMEOUT", default=60.0)
GLOW_OPENAI_MAX_RETRIES = env.int("GLOW_OPENAI_MAX_RETRIES", default=2)
# Model calls one worker process keeps in flight to one provider configuration at most.
GLOW_PROVIDER_MAX_IN_FLIGHT = env.int("GLOW_PROVIDER_MAX_IN_FLIGHT", default=64)
# A test's cell claimed by a worker that stops renewing this lease goes back to the queue.
GLOW_TEST_LEASE_SECONDS = env.float("GLOW_TEST_LEASE_SECONDS", default=60.0)
# Speech (system.gateway.speech_call): `openai` runs are charged per minute of audio, heard or
# spoken; local ones cost nothing. Models are the OpenAI-compatible server's names.
GLOW_SPEECH_PRICE_PER_MINUTE = Decimal(env.str("GLOW_SPEECH_PRICE_PER_MINUTE", default="0.006"))
GLOW_SPEECH_TRANSCRIPTION_MODEL = env.str("GLOW_SPEECH_TRANSCRIPTION_MODEL", default="whisper-1")
GLOW_SPEECH_MODEL = env.str("GLOW_SPEECH_MODEL", default="tts-1")
GLOW_SESSION_IDLE_MINUTES = env.int("GLOW_SESSION_IDLE_MINUTES", default=30)
# Key for tests_app.SecretKey encryption at rest; derived from SECRET_KEY when unset.
GLOW_SECRETS_KEY = env.str("GLOW_SECRETS_KEY", default="")

# Whenever DEBUG is off (production, or an embedded server exposed beyond loopback): HTTPS only.
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# LTI (issue 24): pages launched from an LMS live in its iframe, a third-party context where
# browsers send only SameSite=None cookies, which they accept only when Secure (so: production).
GLOW_LTI_TITLE = env.str("GLOW_LTI_TITLE", default="Glow")
if not DEBUG:
    SESSION_COOKIE_SAMESITE = "None"
    CSRF_COOKIE_SAMESITE = "None"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
