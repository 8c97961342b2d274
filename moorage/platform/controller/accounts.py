"""Users, passwords and API tokens.

Why hashes only: passwords are kept as salted scrypt hashes and tokens as SHA-256
hashes, so the state database never holds anything that logs a user in. A token is a
random 160-bit value; it is shown once (at login or regeneration), and looking it up
by its hash then comparing in constant time leaks nothing about other tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import delete, func, select

from moorage.errors import AuthenticationError, ConflictError, InvalidParametersError, PermissionDeniedError
from moorage.platform.controller.context import Platform, Principal
from moorage.store.apps import Token, User

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.@+-]{0,63}$")
MIN_PASSWORD = 8
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        actual = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _principal(user: User) -> Principal:
    return Principal(id=user.id, username=user.username, is_admin=user.is_admin)


def register(
    platform: Platform, username: str, password: str, email: str = "", by: Principal | None = None
) -> Principal:
    """Create a user. The first one is an admin; later ones need open registration or an admin."""
    if not isinstance(username, str) or not USERNAME_RE.match(username):
        raise InvalidParametersError(
            f"invalid username {username!r}: use 1-64 lower-case letters, digits and _.@+- "
            "starting with a letter or digit"
        )
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidParametersError(f"the password must be at least {MIN_PASSWORD} characters long")
    if not isinstance(email, str):
        raise InvalidParametersError("email must be a string")
    with platform.db.unit_of_work() as s:
        first = s.scalar(select(func.count()).select_from(User)) == 0
        if not first and not platform.settings.platform.allow_registration and not (by and by.is_admin):
            raise PermissionDeniedError(
                "registration is closed on this controller; ask an admin to register you"
            )
        if s.scalar(select(User).where(User.username == username)) is not None:
            raise ConflictError(f"the username {username!r} is already taken; choose another")
        user = User(username=username, email=email, password_hash=hash_password(password), is_admin=first)
        s.add(user)
        s.flush()
        return _principal(user)


def login(platform: Platform, username: str, password: str) -> tuple[Principal, str]:
    """Check a password and issue a new token (earlier tokens stay valid)."""
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidParametersError("username and password are required strings")
    with platform.db.unit_of_work() as s:
        user = s.scalar(select(User).where(User.username == username))
        stored = user.password_hash if user else hash_password(secrets.token_hex(8))  # same cost either way
        if not check_password(password, stored) or user is None:
            raise AuthenticationError("wrong username or password")
        token = secrets.token_hex(20)
        s.add(Token(user_id=user.id, token_hash=token_hash(token)))
        return _principal(user), token


def authenticate(platform: Platform, token: str) -> Principal:
    wanted = token_hash(token)
    with platform.db.sessions() as s:  # every request comes here: a read, never the write lock
        row = s.scalar(select(Token).where(Token.token_hash == wanted))
        if row is None or not hmac.compare_digest(row.token_hash, wanted):
            raise AuthenticationError("invalid token; log in again with `moorage login`")
        user = s.get(User, row.user_id)
        assert user is not None
        return _principal(user)


def regenerate(platform: Platform, who: Principal, username: str | None = None) -> str:
    """Revoke every token of a user (yourself, or anyone for an admin) and issue one new token."""
    target = username or who.username
    if target != who.username and not who.is_admin:
        raise PermissionDeniedError("only an admin can regenerate another user's token")
    with platform.db.unit_of_work() as s:
        user = s.scalar(select(User).where(User.username == target))
        if user is None:
            raise InvalidParametersError(f"no user named {target!r}")
        s.execute(delete(Token).where(Token.user_id == user.id))
        token = secrets.token_hex(20)
        s.add(Token(user_id=user.id, token_hash=token_hash(token)))
        return token


def logout(platform: Platform, token: str) -> None:
    with platform.db.unit_of_work() as s:
        s.execute(delete(Token).where(Token.token_hash == token_hash(token)))


def user_id(platform: Platform, username: str) -> int:
    with platform.db.unit_of_work() as s:
        uid = s.scalar(select(User.id).where(User.username == username))
    if uid is None:
        raise InvalidParametersError(f"no user named {username!r}")
    return uid
