"""Apps: names, who may use them, creation, listing and sharing (destruction: teardown.py).

Why 404 for other people's apps: answering "forbidden" would confirm that the name
exists. :func:`find` is the single access check every other controller function goes
through: the owner, a collaborator (perm) or an admin sees the app; anyone else gets
exactly the answer a missing app gets.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from moorage.errors import (
    ConflictError,
    InvalidParametersError,
    NotFoundError,
    PermissionDeniedError,
)
from moorage.platform.controller import app_uids
from moorage.platform.controller.context import Platform, Principal
from moorage.platform.identity import validate_name
from moorage.store.apps import App, ConfigVars, Domain, Formation, Perm, Release, User

log = logging.getLogger(__name__)

_ADJECTIVES = (
    "amber brave calm dusty eager fancy gentle happy icy jolly keen lucky merry nimble "
    "odd peachy quiet rapid sunny tidy upbeat vivid witty young zesty"
).split()
_NOUNS = (
    "anchor buoy cove dock eddy ferry galley harbor island jetty keel lagoon mast narrows "
    "oar pier quay reef sail tide urchin vessel wharf yacht"
).split()


def generate_name(session: Session) -> str:
    for _ in range(50):
        name = f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}"
        if session.scalar(select(App.id).where(App.name == name)) is None:
            return name
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(10000)}"


def find(session: Session, who: Principal, name: str) -> App:
    """The app named ``name`` if ``who`` may use it, else NotFoundError."""
    app = session.scalar(select(App).where(App.name == name))
    if app is None or not can_use(session, who, app):
        raise NotFoundError(f"no app named {name!r}; see `moorage apps` for yours")
    return app


def can_use(session: Session, who: Principal, app: App) -> bool:
    if who.is_admin or app.owner_id == who.id:
        return True
    perm = session.scalar(select(Perm.id).where(Perm.app_id == app.id, Perm.user_id == who.id))
    return perm is not None


def create(platform: Platform, who: Principal, name: str | None) -> dict[str, Any]:
    """Create an app with its v1 release (empty config, no build)."""
    with platform.db.unit_of_work() as s:
        if name is None or name == "":
            name = generate_name(s)
        validate_name(name)
        if s.scalar(select(App.id).where(App.name == name)) is not None:
            raise ConflictError(f"an app named {name!r} already exists; choose another name")
        app = App(name=name, owner_id=who.id, uid=app_uids.allocate(s, name))
        s.add(app)
        s.flush()
        config = ConfigVars(app_id=app.id, values_enc=platform.encryptor.encrypt_json({}))
        s.add(config)
        s.flush()
        s.add(
            Release(
                app_id=app.id,
                version=1,
                summary=f"{who.username} created initial release",
                config_id=config.id,
                created_by=who.username,
            )
        )
        s.flush()
        log.info("app created", extra={"app": name, "user": who.username})
        return describe(platform, s, app)


def describe(platform: Platform, session: Session, app: App) -> dict[str, Any]:
    owner = session.get(User, app.owner_id)
    formation = {
        f.process_type: f.count
        for f in session.scalars(
            select(Formation).where(Formation.app_id == app.id).order_by(Formation.process_type)
        )
    }
    domains = [
        d.domain for d in session.scalars(select(Domain).where(Domain.app_id == app.id).order_by(Domain.id))
    ]
    return {
        "id": app.name,
        "owner": owner.username if owner else None,
        "url": url_of(platform, app.name),
        "structure": formation,
        "domains": domains,
        "created": app.created_at.isoformat(),
        "updated": app.updated_at.isoformat(),
    }


def url_of(platform: Platform, name: str) -> str:
    p = platform.settings.platform
    port = "" if p.router_port == 80 else f":{p.router_port}"
    return f"http://{name}.{p.base_domain}{port}"


def list_apps(platform: Platform, who: Principal) -> list[dict[str, Any]]:
    with platform.db.sessions() as s:
        query = select(App).order_by(App.name)
        if not who.is_admin:
            shared = select(Perm.app_id).where(Perm.user_id == who.id)
            query = query.where(or_(App.owner_id == who.id, App.id.in_(shared)))
        return [describe(platform, s, app) for app in s.scalars(query)]


def info(platform: Platform, who: Principal, name: str) -> dict[str, Any]:
    with platform.db.sessions() as s:
        return describe(platform, s, find(s, who, name))


def _owner_or_admin(session: Session, who: Principal, name: str) -> App:
    app = find(session, who, name)
    if app.owner_id != who.id and not who.is_admin:
        raise PermissionDeniedError(f"only the owner of {name!r} or an admin can change who shares it")
    return app


def list_perms(platform: Platform, who: Principal, name: str) -> list[str]:
    with platform.db.unit_of_work() as s:
        app = find(s, who, name)
        rows = s.execute(
            select(User.username)
            .join(Perm, Perm.user_id == User.id)
            .where(Perm.app_id == app.id)
            .order_by(User.username)
        )
        return [r[0] for r in rows]


def add_perm(platform: Platform, who: Principal, name: str, username: Any) -> None:
    if not isinstance(username, str) or not username:
        raise InvalidParametersError('give the username to share the app with: {"username": "bob"}')
    with platform.db.unit_of_work() as s:
        app = _owner_or_admin(s, who, name)
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise InvalidParametersError(f"no user named {username!r}")
        if user.id == app.owner_id:
            raise ConflictError(f"{username} owns {name!r} already")
        if s.scalar(select(Perm.id).where(Perm.app_id == app.id, Perm.user_id == user.id)) is not None:
            raise ConflictError(f"{name!r} is already shared with {username}")
        s.add(Perm(app_id=app.id, user_id=user.id))


def remove_perm(platform: Platform, who: Principal, name: str, username: str) -> None:
    with platform.db.unit_of_work() as s:
        app = _owner_or_admin(s, who, name)
        user = s.scalar(select(User).where(User.username == username))
        perm = (
            s.scalar(select(Perm).where(Perm.app_id == app.id, Perm.user_id == user.id))
            if user is not None
            else None
        )
        if perm is None:
            raise NotFoundError(f"{name!r} is not shared with {username!r}")
        s.delete(perm)
