"""The postgres provider against a real PostgreSQL server, used the way an app would."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest
from psycopg import sql

from moorage.catalog.model import Offering
from moorage.embedded.ports import free_port
from moorage.errors import InvalidParametersError, PermanentError, ProviderError
from moorage.providers import pg_roles
from moorage.providers.postgres import PostgresProvider, instance_names
from moorage.settings import Settings
from tests.fixtures.servers import RunningServer
from tests.services.conftest import binding_ctx, instance_ctx


def connect(creds: dict, **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(creds["uri"], connect_timeout=5, autocommit=True, **kwargs)


def database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return pg_roles.database_exists(conn, name)


@pytest.fixture
def provider(pg_settings: Settings) -> PostgresProvider:
    return PostgresProvider(pg_settings)


def test_lifecycle_an_app_can_use_the_database_and_credentials_end_with_unbind(
    provider: PostgresProvider,
    postgresql_offering: Offering,
    pg_settings: Settings,
    postgres_server: RunningServer,
) -> None:
    inst = instance_ctx(postgresql_offering, "shared-small", pg_settings)
    provider.provision(inst)
    binding = binding_ctx(inst)
    result = provider.bind(binding)
    creds = dict(result.credentials)

    with connect(creds) as conn:
        conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes (body) VALUES ('hello')")
        assert conn.execute("SELECT body FROM notes").fetchone() == ("hello",)

    assert creds["port"] == postgres_server.port
    database, _ = instance_names(inst.instance_id)
    assert creds["database"] == creds["name"] == database
    assert (
        creds["uri"]
        == f"postgres://{creds['username']}:{creds['password']}@127.0.0.1:{creds['port']}/{database}"
    )
    assert creds["jdbcUrl"].startswith(f"jdbc:postgresql://127.0.0.1:{creds['port']}/{database}?user=")
    assert [e.to_osb() for e in result.endpoints] == [
        {"host": "127.0.0.1", "ports": [str(creds["port"])], "protocol": "tcp"}
    ]

    provider.unbind(binding)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed|does not exist"):
        connect(creds)

    provider.deprovision(inst)
    assert not database_exists(pg_settings.services.postgres_admin_url, database)


def test_a_binding_cannot_connect_to_another_instances_database(
    provider: PostgresProvider, postgresql_offering: Offering, pg_settings: Settings
) -> None:
    a = instance_ctx(postgresql_offering, "shared-small", pg_settings)
    b = instance_ctx(postgresql_offering, "shared-small", pg_settings)
    provider.provision(a)
    provider.provision(b)
    ba, bb = binding_ctx(a), binding_ctx(b)
    creds_a = dict(provider.bind(ba).credentials)
    creds_b = dict(provider.bind(bb).credentials)
    try:
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect(creds_a, dbname=creds_b["database"])
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect(creds_a, dbname="postgres")
        with connect(creds_b) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (creds_b["database"],)
    finally:
        for binding, inst in ((ba, a), (bb, b)):
            provider.unbind(binding)
            provider.deprovision(inst)


def test_objects_made_through_one_binding_survive_its_unbind_and_serve_the_next(
    provider: PostgresProvider, postgresql_offering: Offering, pg_settings: Settings
) -> None:
    inst = instance_ctx(postgresql_offering, "shared-small", pg_settings)
    provider.provision(inst)
    first, second = binding_ctx(inst), binding_ctx(inst)
    creds1 = dict(provider.bind(first).credentials)
    creds2 = dict(provider.bind(second).credentials)
    assert creds1["username"] != creds2["username"]
    assert creds1["password"] != creds2["password"]

    with connect(creds1) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        conn.execute("INSERT INTO orders VALUES (1)")
        # A role that steps out of the group still cannot leave orphans behind.
        conn.execute("RESET ROLE")
        conn.execute("CREATE TABLE scratch (x int)")
    with connect(creds2) as conn:
        conn.execute("INSERT INTO orders VALUES (2)")

    provider.unbind(first)
    with connect(creds2) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (2,)
        owners = dict(
            conn.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall()
        )
        conn.execute("INSERT INTO scratch VALUES (1)")
    _, group = instance_names(inst.instance_id)
    assert owners == {"orders": group, "scratch": group}

    provider.unbind(second)
    provider.deprovision(inst)


def test_deprovision_is_refused_while_bindings_exist(
    provider: PostgresProvider, postgresql_offering: Offering, pg_settings: Settings
) -> None:
    inst = instance_ctx(postgresql_offering, "shared-small", pg_settings)
    provider.provision(inst)
    binding = binding_ctx(inst)
    creds = dict(provider.bind(binding).credentials)

    with pytest.raises(PermanentError, match="still has 1 binding"):
        provider.deprovision(inst)
    with connect(creds) as conn:  # nothing changed
        conn.execute("SELECT 1")

    provider.unbind(binding)
    provider.deprovision(inst)
    assert not database_exists(pg_settings.services.postgres_admin_url, creds["database"])


def test_every_method_can_be_called_twice(
    provider: PostgresProvider, postgresql_offering: Offering, pg_settings: Settings
) -> None:
    inst = instance_ctx(
        postgresql_offering, "shared-small", pg_settings, parameters={"extensions": ["citext"]}
    )
    assert provider.provision(inst).outputs == provider.provision(inst).outputs
    binding = binding_ctx(inst)
    provider.bind(binding)
    creds = dict(provider.bind(binding).credentials)
    with connect(creds) as conn:
        assert conn.execute("SELECT 'A'::citext = 'a'::citext").fetchone() == (True,)
    provider.unbind(binding)
    provider.unbind(binding)
    provider.deprovision(inst)
    provider.deprovision(inst)
    assert not database_exists(pg_settings.services.postgres_admin_url, creds["database"])


def test_unbind_disconnects_open_sessions(
    provider: PostgresProvider, postgresql_offering: Offering, pg_settings: Settings
) -> None:
    inst = instance_ctx(postgresql_offering, "shared-small", pg_settings)
    provider.provision(inst)
    binding = binding_ctx(inst)
    conn = connect(dict(provider.bind(binding).credentials))
    try:
        provider.unbind(binding)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()
    provider.deprovision(inst)


def test_connection_limit_follows_plan_and_parameters(
    provider: PostgresProvider, postgresql_offering: Offering, pg_settings: Settings
) -> None:
    admin = pg_settings.services.postgres_admin_url

    def limit(name: str) -> int:
        with psycopg.connect(admin) as conn:
            return conn.execute(
                "SELECT datconnlimit FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()[0]

    inst = instance_ctx(postgresql_offering, "shared-small", pg_settings)
    database, _ = instance_names(inst.instance_id)
    provider.provision(inst)
    assert limit(database) == 20
    # A binding cannot lift the plan's limit: it does not own the database.
    binding = binding_ctx(inst)
    creds = provider.bind(binding).credentials
    with psycopg.connect(creds["uri"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT -1").format(sql.Identifier(database)))
        conn.execute("CREATE TABLE still_allowed (id int)")  # the public schema is the instance's
    provider.unbind(binding)
    assert limit(database) == 20

    small = instance_ctx(
        postgresql_offering,
        "shared-small",
        pg_settings,
        instance_id=inst.instance_id,
        parameters={"connection_limit": 5},
        action="update",
    )
    provider.update(small)
    assert limit(database) == 5

    large = instance_ctx(
        postgresql_offering, "shared-large", pg_settings, instance_id=inst.instance_id, action="update"
    )
    provider.update(large)
    assert limit(database) == 100

    # Past the schema (a plan change keeping an old parameter): the provider still refuses.
    too_many = replace(small, parameters={"connection_limit": 50})
    with pytest.raises(InvalidParametersError, match="more than plan shared-small allows"):
        provider.update(too_many)
    assert limit(database) == 100
    provider.deprovision(inst)


def test_extensions_outside_the_allow_list_are_refused_before_anything_is_created(
    provider: PostgresProvider, postgresql_offering: Offering, pg_settings: Settings
) -> None:
    inst = instance_ctx(postgresql_offering, "shared-small", pg_settings)
    inst = replace(inst, parameters={"extensions": ["plpython3u"]})  # past the schema
    with pytest.raises(InvalidParametersError, match="plpython3u are not offered"):
        provider.provision(inst)
    database, _ = instance_names(inst.instance_id)
    assert not database_exists(pg_settings.services.postgres_admin_url, database)


def test_bindings_can_connect_over_ssl(
    provider: PostgresProvider, postgresql_offering: Offering, pg_settings: Settings
) -> None:
    inst = instance_ctx(postgresql_offering, "shared-small", pg_settings)
    provider.provision(inst)
    binding = binding_ctx(inst)
    with connect(dict(provider.bind(binding).credentials), sslmode="require") as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT 1").fetchone() == (1,)
    provider.unbind(binding)
    provider.deprovision(inst)


def test_an_unreachable_server_is_a_provider_error_without_the_password(
    postgresql_offering: Offering, pg_settings: Settings
) -> None:
    port = free_port()
    settings = pg_settings.with_group(
        services={"postgres_admin_url": f"postgresql://moorage:s3cret-pw@127.0.0.1:{port}/postgres"}
    )
    with pytest.raises(
        ProviderError, match=f"could not use the PostgreSQL server at 127.0.0.1:{port}"
    ) as info:
        PostgresProvider(settings).provision(instance_ctx(postgresql_offering, "shared-small", settings))
    assert "s3cret-pw" not in str(info.value)
