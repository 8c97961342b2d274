"""One view: proves the app reached the database named by DATABASE_URL."""

from django.contrib.auth.models import User
from django.db import connection
from django.http import HttpResponse
from django.urls import path


def index(request):
    return HttpResponse(f"django on {connection.vendor}: {User.objects.count()} users\n")


urlpatterns = [path("", index)]
