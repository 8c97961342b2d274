"""An app's log on Kubernetes: its pods' output merged with its namespace's events.

Why merged: ``moorage logs`` is one timeline, as with the local runtime — what the
processes print (``app[web.1]``) beside what the platform did to them (scheduled, pulled,
scaled, killed: the Events, as ``moorage[kubernetes]``). Following polls: every second
it reads each pod's last few seconds (``sinceSeconds``, with the kubelet's timestamps)
and the recent events, and yields what it has not yielded yet — so pods that start
later are followed too, and no stream per pod is held open.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

from moorage.clients.kubernetes import KubeApi
from moorage.errors import InvalidParametersError, NotFoundError
from moorage.platform.runtime.base import LogLine

FOLLOW_POLL_SECONDS = 1.0
#: How far back each poll looks; lines seen are remembered for twice as long.
FOLLOW_WINDOW_SECONDS = 10


def line(source: str, raw: str) -> LogLine:
    """``<RFC 3339 time> <text>`` as the log API returns it with ``timestamps``."""
    stamp, _, text = raw.partition(" ")
    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return LogLine(dt.datetime.now(dt.UTC), source, raw)
    return LogLine(when, source, text)


def read(
    api: KubeApi,
    namespace: str,
    pods: list[dict[str, Any]],
    tail: int | None = None,
    since: int | None = None,
) -> list[LogLine]:
    """The pods' output and the namespace's events, oldest first."""
    collected: list[LogLine] = []
    numbers: dict[str, int] = {}
    for pod in pods:
        ptype = pod["metadata"]["labels"].get("type", "")
        numbers[ptype] = numbers.get(ptype, 0) + 1
        if (pod.get("status") or {}).get("phase") not in ("Running", "Succeeded", "Failed"):
            continue
        source = f"app[{ptype}.{numbers[ptype]}]"
        try:
            raw_lines = api.pod_log(namespace, pod["metadata"]["name"], tail=tail, since_seconds=since)
        except (NotFoundError, InvalidParametersError):
            continue  # gone, or not started yet: nothing to read
        collected.extend(line(source, raw) for raw in raw_lines)
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=since) if since else None
    for event in api.list("event", namespace):
        when = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
        involved = (event.get("involvedObject") or {}).get("name", "")
        entry = line(
            "moorage[kubernetes]", f"{when} {involved}: {event.get('reason')}: {event.get('message') or ''}"
        )
        if cutoff is None or entry.timestamp >= cutoff:
            collected.append(entry)
    collected.sort(key=lambda entry: entry.timestamp)
    return collected


def follow(
    api: KubeApi, namespace: str, pods: Callable[[], list[dict[str, Any]]], batch: list[LogLine]
) -> Iterator[LogLine]:
    """``batch``, then every new line as it appears, until the caller closes the iterator."""
    seen: dict[tuple[dt.datetime, str], dt.datetime] = {}
    for entry in batch:
        seen[(entry.timestamp, entry.line)] = entry.timestamp
        yield entry
    while True:
        time.sleep(FOLLOW_POLL_SECONDS)
        for entry in read(api, namespace, pods(), since=FOLLOW_WINDOW_SECONDS):
            key = (entry.timestamp, entry.line)
            if key not in seen:
                seen[key] = entry.timestamp
                yield entry
        forget = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2 * FOLLOW_WINDOW_SECONDS)
        seen = {key: when for key, when in seen.items() if when >= forget}
