"""Settings of the guestbook: the database is whatever DATABASE_URL names (MySQL here)."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SECRET_KEY", "guestbook-test-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.staticfiles",
    "guestbook",
]
MIDDLEWARE = []
ROOT_URLCONF = "guestbook.urls"
WSGI_APPLICATION = "guestbook.wsgi.application"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

# Without DATABASE_URL (no database bound yet): a throwaway in-memory SQLite.
DATABASES = {"default": dj_database_url.config(default="sqlite://:memory:", conn_max_age=60)}
