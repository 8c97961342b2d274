"""``/``: which database this is and how many entries it holds; ``/sign?name=``: add one."""

from django.db import connection
from django.http import JsonResponse

from guestbook.models import Entry


def index(request):
    if connection.vendor != "mysql":  # no database bound: nothing to show
        return JsonResponse({"vendor": connection.vendor})
    with connection.cursor() as cursor:
        cursor.execute("SELECT DATABASE(), CURRENT_USER(), VERSION()")
        database, user, version = cursor.fetchone()
    return JsonResponse(
        {
            "vendor": connection.vendor,
            "driver": type(connection.connection).__module__,
            "database": database,
            "user": user,
            "version": version,
            "entries": Entry.objects.count(),
        }
    )


def sign(request):
    Entry.objects.create(name=request.GET.get("name", "anonymous"))
    return JsonResponse({"entries": Entry.objects.count()})
