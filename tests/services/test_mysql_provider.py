"""The mysql provider against a real MariaDB: databases, binding users, their limits, clean-up."""

from __future__ import annotations

from dataclasses import replace

import pymysql
import pytest

from moorage.catalog.model import Offering
from moorage.errors import InvalidParametersError, PermanentError
from moorage.providers.mysql import MysqlProvider, binding_user, database_name
from moorage.settings import Settings
from tests.fixtures.mysql import connect
from tests.fixtures.servers import RunningServer
from tests.services.conftest import binding_ctx, instance_ctx


@pytest.fixture
def provider(mysql_settings: Settings):  # type: ignore[no-untyped-def]
    p = MysqlProvider(mysql_settings)
    yield p
    p.close()


def admin_rows(server: RunningServer, query: str, args: tuple = ()) -> list[tuple]:
    with connect(server.admin_url) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return list(cur.fetchall())


def test_bind_gives_a_user_with_rights_on_its_database_only(
    provider: MysqlProvider, mysql_offering: Offering, mysql_settings: Settings, mysql_server: RunningServer
) -> None:
    ictx = instance_ctx(
        mysql_offering, "shared-small", mysql_settings, parameters={"collation": "utf8mb4_bin"}
    )
    provider.provision(ictx)
    creds = provider.bind(binding_ctx(ictx)).credentials
    assert creds["uri"] == (
        f"mysql://{creds['username']}:{creds['password']}@127.0.0.1:{mysql_server.port}/{creds['database']}"
    )
    assert creds["jdbcUrl"].startswith(
        f"jdbc:mysql://127.0.0.1:{mysql_server.port}/{creds['database']}?user="
    )
    with connect(creds["uri"]) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE notes (body VARCHAR(20)) ENGINE=InnoDB")
        cur.execute("INSERT INTO notes VALUES ('Hello'), ('hello')")
        cur.execute("SELECT count(*) FROM notes WHERE body = 'hello'")
        assert cur.fetchone() == (1,)  # utf8mb4_bin compares bytes
        cur.execute("SHOW DATABASES")
        assert {row[0] for row in cur.fetchall()} == {"information_schema", creds["database"]}
        cur.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cur.fetchall())
        for forbidden in ("GRANT OPTION", "SUPER", "FILE", "PROCESS", "ALL PRIVILEGES"):
            assert forbidden not in grants
        for statement in (
            "SELECT * FROM mysql.user",
            "CREATE DATABASE elsewhere",
            f"CREATE DATABASE {creds['database'].replace('_', 'X', 1)}",  # `_` is a wildcard in grants
            "SELECT 'x' INTO OUTFILE '/tmp/moorage-mysql-test-outfile'",
            f"GRANT SELECT ON {creds['database']}.* TO root@localhost",
            "SET GLOBAL max_connections = 5",
        ):
            with pytest.raises(pymysql.MySQLError):
                cur.execute(statement)
        cur.execute("SHOW PROCESSLIST")  # without PROCESS: its own connections only
        assert {row[1] for row in cur.fetchall()} == {creds["username"]}
    with connect(creds["uri"], ssl={"check_hostname": False}) as conn, conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")  # apps that insist on TLS get it
        assert cur.fetchone()[1].startswith("TLS")


def test_unbind_refuses_the_password_and_kills_open_connections(
    provider: MysqlProvider, mysql_offering: Offering, mysql_settings: Settings
) -> None:
    ictx = instance_ctx(mysql_offering, "shared-small", mysql_settings)
    provider.provision(ictx)
    gone, kept = binding_ctx(ictx), binding_ctx(ictx)
    old, other = provider.bind(gone).credentials, provider.bind(kept).credentials
    assert old["username"] != other["username"] and old["password"] != other["password"]
    with connect(old["uri"]) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE t (n INT)")
        provider.unbind(gone)
        with pytest.raises(pymysql.OperationalError):
            cur.execute("SELECT 1")
    with pytest.raises(pymysql.OperationalError) as refused:
        connect(old["uri"])
    assert refused.value.args[0] in (1045, 1698)  # access denied (1698: MariaDB's word for an unknown user)
    with connect(other["uri"]) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1)")  # the table outlives the binding that made it
    provider.unbind(gone)  # again: already done


def test_instances_cannot_reach_each_other(
    provider: MysqlProvider, mysql_offering: Offering, mysql_settings: Settings
) -> None:
    a = instance_ctx(mysql_offering, "shared-small", mysql_settings)
    b = instance_ctx(mysql_offering, "shared-small", mysql_settings)
    provider.provision(a)
    provider.provision(b)
    creds_a = provider.bind(binding_ctx(a)).credentials
    creds_b = provider.bind(binding_ctx(b)).credentials
    with pytest.raises(pymysql.OperationalError) as refused:
        connect(creds_a["uri"].rsplit("/", 1)[0] + "/" + creds_b["database"])
    assert refused.value.args[0] == 1044  # access denied to database
    with connect(creds_a["uri"]) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.MySQLError):
            cur.execute(f"SELECT * FROM {creds_b['database']}.anything")


def test_deprovision_is_refused_while_bound_then_drops_the_database(
    provider: MysqlProvider, mysql_offering: Offering, mysql_settings: Settings, mysql_server: RunningServer
) -> None:
    ictx = instance_ctx(mysql_offering, "shared-small", mysql_settings)
    provider.provision(ictx)
    provider.provision(ictx)  # again: converges, creates nothing twice
    bctx = binding_ctx(ictx)
    provider.bind(bctx)
    with pytest.raises(PermanentError, match="unbind"):
        provider.deprovision(ictx)
    database = database_name(ictx.instance_id)
    schemata = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s"
    assert admin_rows(mysql_server, schemata, (database,)) == [(database,)]
    provider.unbind(bctx)
    provider.deprovision(ictx)
    provider.deprovision(ictx)
    assert admin_rows(mysql_server, schemata, (database,)) == []


def test_binding_again_makes_the_latest_password_the_valid_one(
    provider: MysqlProvider, mysql_offering: Offering, mysql_settings: Settings
) -> None:
    ictx = instance_ctx(mysql_offering, "shared-small", mysql_settings)
    provider.provision(ictx)
    bctx = binding_ctx(ictx)
    first = provider.bind(bctx).credentials
    second = provider.bind(bctx).credentials
    assert first["username"] == second["username"] == binding_user(ictx.instance_id, bctx.binding_id)
    with pytest.raises(pymysql.OperationalError):
        connect(first["uri"])
    connect(second["uri"]).close()


def test_connection_limit_per_binding_and_plan_limit(
    provider: MysqlProvider, mysql_offering: Offering, mysql_settings: Settings, mysql_server: RunningServer
) -> None:
    ictx = instance_ctx(mysql_offering, "shared-small", mysql_settings, parameters={"connection_limit": 2})
    provider.provision(ictx)
    creds = provider.bind(binding_ctx(ictx)).credentials
    held = [connect(creds["uri"]), connect(creds["uri"])]
    with pytest.raises(pymysql.OperationalError) as refused:
        connect(creds["uri"])
    assert refused.value.args[0] == 1226  # max_user_connections
    raised = replace(ictx, parameters={"connection_limit": 3})
    provider.update(raised)  # applies to the bindings that exist
    held.append(connect(creds["uri"]))
    for conn in held:
        conn.close()
    too_many = instance_ctx(mysql_offering, "shared-large", mysql_settings)
    too_many = replace(too_many, parameters={"connection_limit": 500})
    with pytest.raises(InvalidParametersError, match="connection_limit"):
        provider.provision(too_many)
    database = database_name(too_many.instance_id)
    rows = admin_rows(
        mysql_server, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,)
    )
    assert rows == [], "a refused provision creates nothing"
