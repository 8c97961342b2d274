"""Registered service brokers: the built-in one, those admins add, and their cached catalogs.

Why cached catalogs: the marketplace, ``services:create`` and the config-var rules all
read the catalog, and a broker that is slow or down must not make every one of those
requests slow. A catalog is fetched when a broker is added, re-fetched on
``brokers:refresh`` (with ``If-None-Match`` when the broker gave an ETag) and before each
``services:create`` (which also proves the broker is reachable before anything is
recorded). The built-in broker is registered at the controller's first start; its URL
and credentials always follow the settings (the password from ``MOORAGE_BROKER_PASSWORD``
or the ``broker-password`` file the broker writes in the data dir), so they are never
copied into the database. The platform never imports ``moorage.broker``: it is one more
broker over HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moorage.errors import ConflictError, Error, InvalidParametersError, NotFoundError, PermissionDeniedError
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.osb_client import BrokerCatalog, OsbClient
from moorage.store.base import utcnow
from moorage.store.services import Broker, ServiceInstance

log = logging.getLogger(__name__)

BUILTIN = "moorage"
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def _admin(who: Principal) -> None:
    if not who.is_admin:
        raise PermissionDeniedError("only an admin can manage service brokers")


def builtin_url(platform: Platform) -> str:
    b = platform.settings.broker
    host = "127.0.0.1" if b.host in ("0.0.0.0", "", "::") else b.host
    return f"http://{host}:{b.port}"


def builtin_password(platform: Platform) -> str:
    if platform.settings.broker.password:
        return platform.settings.broker.password
    path = platform.settings.data_dir / "broker-password"
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def ensure_builtin(platform: Platform) -> None:
    """Register the built-in broker once (at the controller's first start)."""
    with platform.db.unit_of_work() as s:
        if s.scalar(select(Broker.id).where(Broker.builtin.is_(True))) is not None:
            return
        if s.scalar(select(Broker.id).where(Broker.name == BUILTIN)) is not None:
            return  # an admin took the name; leave theirs alone
        s.add(Broker(name=BUILTIN, url="", username="", builtin=True))
    log.info("built-in broker registered", extra={"broker": BUILTIN})


@contextlib.contextmanager
def connection(platform: Platform, broker: Broker) -> Iterator[OsbClient]:
    """A client for ``broker``, closed on leaving whatever happened."""
    client = client_for(platform, broker)
    try:
        yield client
    finally:
        client.close()


def client_for(platform: Platform, broker: Broker) -> OsbClient:
    p = platform.settings.platform
    if broker.builtin:
        url, username, password = (
            builtin_url(platform),
            platform.settings.broker.username,
            builtin_password(platform),
        )
    else:
        url, username = broker.url, broker.username
        password = platform.encryptor.decrypt(broker.password_enc).decode() if broker.password_enc else ""
    return OsbClient(
        url, username, password, timeout=p.osb_timeout_seconds, max_polling_seconds=p.osb_max_polling_seconds
    )


def describe(platform: Platform, broker: Broker, instances: int = 0) -> dict[str, Any]:
    services = (broker.catalog or {}).get("services") or []
    return {
        "name": broker.name,
        "url": builtin_url(platform) if broker.builtin else broker.url,
        "username": platform.settings.broker.username if broker.builtin else broker.username,
        "builtin": broker.builtin,
        "services": sorted(str(o.get("name")) for o in services),
        "etag": broker.etag,
        "fetched": broker.fetched_at.isoformat() if broker.fetched_at else None,
        "instances": instances,
    }


def _validate(name: Any, url: Any, username: Any, password: Any) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidParametersError(
            f"invalid broker name {name!r}: use lower-case letters, digits and dashes, starting with a letter"
        )
    parsed = urlparse(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidParametersError(f"invalid broker URL {url!r}: give an http:// or https:// URL")
    for what, value in (("username", username), ("password", password)):
        if not isinstance(value, str) or not value:
            raise InvalidParametersError(f"the broker's {what} is required (--{what})")


def add(
    platform: Platform, who: Principal, name: Any, url: Any, username: Any, password: Any
) -> dict[str, Any]:
    """Register a broker after fetching its catalog (an unreachable broker is not added)."""
    _admin(who)
    _validate(name, url, username, password)
    with platform.db.unit_of_work() as s:
        if s.scalar(select(Broker.id).where(Broker.name == name)) is not None:
            raise ConflictError(f"a broker named {name!r} is already registered; choose another name")
    broker = Broker(
        name=name,
        url=url.rstrip("/"),
        username=username,
        password_enc=platform.encryptor.encrypt(password.encode()),
        builtin=False,
    )
    with connection(platform, broker) as client:
        catalog = client.catalog()
    assert catalog is not None
    broker.catalog, broker.etag, broker.fetched_at = {"services": catalog.services}, catalog.etag, utcnow()
    with platform.db.unit_of_work() as s:
        if s.scalar(select(Broker.id).where(Broker.name == name)) is not None:
            raise ConflictError(f"a broker named {name!r} is already registered; choose another name")
        s.add(broker)
        s.flush()
        log.info("broker registered", extra={"broker": name, "user": who.username})
        return describe(platform, broker)


def _count_instances(session: Session, broker_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(ServiceInstance).where(ServiceInstance.broker_id == broker_id)
        )
        or 0
    )


def list_brokers(platform: Platform, who: Principal) -> list[dict[str, Any]]:
    _admin(who)
    with platform.db.unit_of_work() as s:
        rows = list(s.scalars(select(Broker).order_by(Broker.name)))
        return [describe(platform, b, _count_instances(s, b.id)) for b in rows]


def find(session: Session, name: str) -> Broker:
    broker = session.scalar(select(Broker).where(Broker.name == name))
    if broker is None:
        raise NotFoundError(f"no broker named {name!r}; see `moorage brokers`")
    return broker


def remove(platform: Platform, who: Principal, name: str) -> None:
    _admin(who)
    with platform.db.unit_of_work() as s:
        broker = find(s, name)
        if broker.builtin:
            raise ConflictError("the built-in broker cannot be removed (it is registered again at start)")
        count = _count_instances(s, broker.id)
        if count:
            raise ConflictError(
                f"broker {name!r} still has {count} service instance(s); destroy them first (`moorage services`)"
            )
        s.delete(broker)
    log.info("broker removed", extra={"broker": name, "user": who.username})


def refresh(platform: Platform, who: Principal, name: str) -> dict[str, Any]:
    """Re-fetch one broker's catalog; ``changed`` is False when the ETag still matched."""
    _admin(who)
    changed = fetch_catalog(platform, name, force=True)
    with platform.db.unit_of_work() as s:
        broker = find(s, name)
        return {**describe(platform, broker, _count_instances(s, broker.id)), "changed": changed}


def fetch_catalog(platform: Platform, name: str, force: bool = False) -> bool:
    """Fetch (or revalidate) a broker's catalog into the cache; True when it changed."""
    with platform.db.unit_of_work() as s:
        broker = find(s, name)
        if broker.catalog is not None and not force:
            return False
        s.expunge(broker)
    with connection(platform, broker) as client:
        catalog: BrokerCatalog | None = client.catalog(broker.etag if broker.catalog is not None else None)
    with platform.db.unit_of_work() as s:
        row = find(s, name)
        row.fetched_at = utcnow()
        if catalog is None:
            return False
        changed = row.catalog != {"services": catalog.services}
        row.catalog, row.etag = {"services": catalog.services}, catalog.etag
        return changed


def catalogs(platform: Platform) -> list[tuple[str, BrokerCatalog, str | None]]:
    """Every broker's cached catalog (fetched now if never fetched); a broker that is down
    contributes an empty catalog and the reason."""
    with platform.db.unit_of_work() as s:
        names = [(b.name, b.catalog is None) for b in s.scalars(select(Broker).order_by(Broker.name))]
    out = []
    for name, missing in names:
        problem = None
        if missing:
            try:
                fetch_catalog(platform, name)
            except Error as exc:  # one broker down must not hide the others
                problem = str(exc)
        with platform.db.unit_of_work() as s:
            row = find(s, name)
            services = list((row.catalog or {}).get("services") or [])
        out.append((name, BrokerCatalog(services, None), problem))
    return out
