"""The PostgreSQL role scheme of a service instance: one owner group, one login role per binding.

Why a module of plain functions: the local ``postgres`` provider and the AWS RDS provider
manage bindings the same way, on different servers; both pass a psycopg connection.

The scheme, for a database ``db`` of one service instance:

* a **group role** (NOLOGIN) owns ``db`` and, through ``ALTER ROLE … SET role``, every
  object any binding creates in it;
* each **binding** is a LOGIN role, member of the group, with its own password. Its
  sessions start with ``SET ROLE <group>``, so tables it creates belong to the group and
  stay usable by the other bindings and after it is gone;
* ``CONNECT`` on ``db`` is revoked from PUBLIC: only the group's members (and superusers)
  may connect, so instance A's bindings cannot reach instance B's database.

Every function is idempotent: it looks before it acts and treats "already there" (or,
when dropping, "already gone") as done, so a provider can call it again after a crash.
Identifiers and literals always go through :mod:`psycopg.sql`. Connections must be in
autocommit mode (``CREATE DATABASE`` cannot run in a transaction) and belong to a role
allowed to create roles (a superuser, or ``rds_superuser``/CREATEROLE on RDS).
"""

from __future__ import annotations

import psycopg
from psycopg import sql


def connect(host: str, port: int, database: str, user: str, password: str) -> psycopg.Connection:
    """A connection as the functions here need it: autocommit; 10 s to connect, then the engine retries."""
    login = {"host": host, "port": port, "dbname": database, "user": user, "password": password}
    return psycopg.connect(**login, autocommit=True, connect_timeout=10)


def role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def database_exists(conn: psycopg.Connection, database: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None


def create_group_role(conn: psycopg.Connection, group: str) -> None:
    """Create the instance's owner group (NOLOGIN) unless it exists."""
    if role_exists(conn, group):
        return
    try:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)))
    except psycopg.errors.DuplicateObject:
        pass  # created concurrently by another call for the same instance


def create_database(
    conn: psycopg.Connection, database: str, group: str, *, connection_limit: int | None = None
) -> None:
    """Create ``database`` for the instance's ``group`` role, CONNECT revoked from PUBLIC.

    The database is owned by the connecting (admin) role, not by the group: a database's
    owner may ``ALTER DATABASE … CONNECTION LIMIT``, and bindings must not lift the plan's
    limit. The group gets CONNECT, TEMPORARY and CREATE on it, and the ``public`` schema
    (see :func:`give_public_schema`). ``connection_limit`` (None: unlimited) is applied on
    every call, so calling again after a plan change updates it.
    """
    limit = -1 if connection_limit is None else int(connection_limit)
    ident, group_ident = sql.Identifier(database), sql.Identifier(group)
    if not database_exists(conn, database):
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} CONNECTION LIMIT {}").format(ident, sql.Literal(limit)))
        except psycopg.errors.DuplicateDatabase:
            pass
    conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(ident))
    conn.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(ident, sql.Literal(limit)))
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
    conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY, CREATE ON DATABASE {} TO {}").format(ident, group_ident))


def give_public_schema(conn: psycopg.Connection, group: str) -> None:
    """Make ``group`` the owner of the ``public`` schema of the database ``conn`` is in.

    Tables the bindings create there then belong to the group, and survive any one
    binding's unbind. Must be called on a connection to the instance's database.
    """
    conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(group)))


def create_login_role(
    conn: psycopg.Connection, role: str, password: str, group: str, *, connection_limit: int | None = None
) -> None:
    """Create (or reset the password of) a binding's LOGIN role, member of ``group``.

    Sessions of the role run as the group (``ALTER ROLE … SET role``), so what it creates
    is owned by the group. Calling again sets ``password`` again: the latest call's
    password is the valid one.
    """
    ident, group_ident = sql.Identifier(role), sql.Identifier(group)
    limit = sql.Literal(-1 if connection_limit is None else int(connection_limit))
    if not role_exists(conn, role):
        try:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN INHERIT PASSWORD {} CONNECTION LIMIT {}").format(
                    ident, sql.Literal(password), limit
                )
            )
        except psycopg.errors.DuplicateObject:
            pass
    conn.execute(
        sql.SQL("ALTER ROLE {} LOGIN INHERIT PASSWORD {} CONNECTION LIMIT {}").format(
            ident, sql.Literal(password), limit
        )
    )
    if not is_member(conn, role, group):
        conn.execute(sql.SQL("GRANT {} TO {}").format(group_ident, ident))
    conn.execute(sql.SQL("ALTER ROLE {} SET role = {}").format(ident, sql.Literal(group)))


def is_member(conn: psycopg.Connection, role: str, group: str) -> bool:
    row = conn.execute(
        """SELECT 1 FROM pg_auth_members m
             JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member
            WHERE g.rolname = %s AND r.rolname = %s""",
        (group, role),
    ).fetchone()
    return row is not None


def members(conn: psycopg.Connection, group: str) -> list[str]:
    """The roles that are members of ``group`` (the bindings still alive), sorted."""
    rows = conn.execute(
        """SELECT r.rolname FROM pg_auth_members m
             JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member
            WHERE g.rolname = %s ORDER BY r.rolname""",
        (group,),
    ).fetchall()
    return [row[0] for row in rows]


def terminate_sessions(
    conn: psycopg.Connection, *, role: str | None = None, database: str | None = None
) -> None:
    """Disconnect every session of ``role`` and/or on ``database`` (not our own)."""
    conn.execute(
        """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE pid <> pg_backend_pid()
              AND (%(role)s::text IS NULL OR usename = %(role)s)
              AND (%(db)s::text IS NULL OR datname = %(db)s)""",
        {"role": role, "db": database},
    )


def drop_login_role(conn: psycopg.Connection, role: str, group: str) -> None:
    """Remove a binding's role safely; a role that does not exist is already removed.

    ``conn`` must be connected to the instance's database: ``REASSIGN OWNED`` and
    ``DROP OWNED`` act on the current database (objects the role created while not
    running as the group are given to the group, its grants are dropped). Order: forbid
    new logins, disconnect its sessions, hand over, drop.
    """
    if not role_exists(conn, role):
        return
    ident = sql.Identifier(role)
    conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident))
    terminate_sessions(conn, role=role)
    conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(ident, sql.Identifier(group)))
    conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
    try:
        conn.execute(sql.SQL("DROP ROLE {}").format(ident))
    except psycopg.errors.UndefinedObject:
        pass


def drop_database(conn: psycopg.Connection, database: str) -> None:
    """Drop ``database`` after disconnecting its sessions; nothing to do if it is gone."""
    if database_exists(conn, database):
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def drop_group_role(conn: psycopg.Connection, group: str) -> None:
    """Drop the owner group once its database is gone; nothing to do if it is gone."""
    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(group)))
