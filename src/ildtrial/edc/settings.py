"""Django settings, all from environment variables (see README "Configuration").

ILDTRIAL_ENV=production switches on the production posture: a SECRET_KEY and
ALLOWED_HOSTS must be given, cookies are secure, HSTS is sent. Anything else is the
development/demo posture, which still uses Argon2, lockout and 2FA.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent
ENV = os.environ.get("ILDTRIAL_ENV", "development")
PRODUCTION = ENV == "production"
DATA_DIR = Path(os.environ.get("ILDTRIAL_DATA_DIR", Path.cwd() / "var"))


def _env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set in the environment when ILDTRIAL_ENV=production")
    SECRET_KEY = "development-only-key-not-for-production-use-0123456789abcdef"  # noqa: S105

DEBUG = _env_bool("DEBUG", default=False)
ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set in the environment when ILDTRIAL_ENV=production")
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS")

#: The protocol file in force; the packaged NCT02594839 file by default.
ILDTRIAL_PROTOCOL_FILE = os.environ.get("ILDTRIAL_PROTOCOL_FILE") or None
#: Masking override for running the same protocol double-blind ("open_label" | "double_blind").
ILDTRIAL_MASKING = os.environ.get("ILDTRIAL_MASKING") or None

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "ildtrial.edc.study",
    "ildtrial.edc.accounts",
    "ildtrial.edc.audit",
    "ildtrial.edc.esign",
    "ildtrial.edc.participants",
    "ildtrial.edc.visits",
    "ildtrial.edc.crfs",
    "ildtrial.edc.screening",
    "ildtrial.edc.randomization",
    "ildtrial.edc.queries",
    "ildtrial.edc.safety",
    "ildtrial.edc.reports",
    "ildtrial.edc.cellproduct",
    "ildtrial.edc.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "ildtrial.edc.accounts.middleware.UserLanguageMiddleware",
    "ildtrial.edc.accounts.middleware.TwoFactorRequiredMiddleware",
    "ildtrial.edc.audit.middleware.AuditRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ildtrial.edc.urls"
WSGI_APPLICATION = "ildtrial.edc.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "ildtrial.edc.study.context.trial",
            ]
        },
    }
]

_default_db = f"sqlite:///{DATA_DIR / 'ildtrial.sqlite3'}"
if "DATABASE_URL" not in os.environ:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", _default_db), conn_max_age=60)}
_SQLITE_SYNC = os.environ.get("ILDTRIAL_SQLITE_SYNCHRONOUS", "NORMAL").upper()
if _SQLITE_SYNC not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
    raise ImproperlyConfigured("ILDTRIAL_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock at BEGIN, so appends to the audit chain
    # and allocation of randomization slots are serialised instead of failing mid-way.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        # ILDTRIAL_SQLITE_SYNCHRONOUS=OFF only for throwaway databases (the demo): faster, not crash-safe
        "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={_SQLITE_SYNC}; PRAGMA foreign_keys=ON;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Tests use a file, not shared-cache memory, so concurrent writers wait on the lock as in production.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("ILDTRIAL_TEST_SQLITE")
        or str(Path(tempfile.gettempdir()) / f"ildtrial-test-{os.getpid()}.sqlite3")
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "ildtrial.edc.accounts.passwords.CharacterClassValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

# Lockout: five failures for one username (or from one address) lock it for 30 minutes.
AXES_FAILURE_LIMIT = int(os.environ.get("ILDTRIAL_LOCKOUT_FAILURES", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("ILDTRIAL_LOCKOUT_HOURS", "0.5"))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False

# Idle sessions expire: every request renews a 30-minute cookie.
SESSION_COOKIE_AGE = int(os.environ.get("ILDTRIAL_SESSION_IDLE_MINUTES", "30")) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
OTP_TOTP_ISSUER = "ildtrial NCT02594839"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ru", "Русский")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = os.environ.get("TIME_ZONE", "Europe/Moscow")
USE_TZ = True

STATIC_URL = "/static/"
# the project's own stylesheet and scripts (ildtrial.edc itself is not an app, so name the folder)
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", DATA_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _env_bool("EMAIL_USE_TLS", default=False)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "ildtrial@localhost")

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = False
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
