"""Settings of the builder tests' Django app: the database comes from DATABASE_URL."""

import os
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SECRET_KEY", "builder-test-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.staticfiles"]
MIDDLEWARE = []
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]


def _database(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise RuntimeError(f"this test app only speaks sqlite, not {parsed.scheme}")
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": parsed.path or ":memory:"}


DATABASES = {"default": _database(os.environ.get("DATABASE_URL", "sqlite://"))}
