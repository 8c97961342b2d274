"""The operator's own server by admin URL: an account with only the privileges docs/settings.md lists.

The session's MariaDB stands for the operator's server; the account below is what an
operator would create for Moorage (not a superuser): it may create users, create and
drop the ``moorage_*`` databases and grant on them, read ``mysql.db`` and see and kill
other users' connections.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pymysql
import pytest

from moorage.catalog.model import Offering
from moorage.errors import ConfigurationError, ProviderError
from moorage.providers.mysql import MysqlProvider
from moorage.settings import Settings
from tests.fixtures.mysql import connect
from tests.fixtures.servers import RunningServer
from tests.services.conftest import binding_ctx, instance_ctx

OPERATOR_GRANTS = (
    "GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO %s@'%%'",
    "GRANT ALL PRIVILEGES ON `moorage\\_%%`.* TO %s@'%%' WITH GRANT OPTION",
    "GRANT SELECT ON mysql.db TO %s@'%%'",
)


@pytest.fixture
def operator_url(mysql_server: RunningServer) -> Iterator[str]:
    name, password = f"op_{uuid.uuid4().hex[:8]}", "operator's pass/word"
    with connect(mysql_server.admin_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, password))
        for grant in OPERATOR_GRANTS:
            cur.execute(grant, (name,))
    yield f"mysql://{name}:{quote(password, safe='')}@{mysql_server.host}:{mysql_server.port}/"
    with connect(mysql_server.admin_url) as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS %s@'%%'", (name,))


def test_a_least_privileged_operator_account_runs_the_whole_lifecycle(
    operator_url: str, mysql_offering: Offering, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path).with_group(
        services={"mysql_admin_url": operator_url, "mysql_public_host": "db.example.internal"}
    )
    provider = MysqlProvider(settings)
    try:
        ictx = instance_ctx(mysql_offering, "shared-small", settings)
        provider.provision(ictx)
        bctx = binding_ctx(ictx)
        creds = dict(provider.bind(bctx).credentials)
        assert creds["host"] == "db.example.internal"  # what apps are told; the test connects locally
        local = creds["uri"].replace("db.example.internal", "127.0.0.1")
        with connect(local) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t (n INT)")
            held = connect(local)
            provider.unbind(bctx)  # the operator account can kill the binding's connections
            with pytest.raises(pymysql.OperationalError), held.cursor() as other:
                other.execute("SELECT 1")
        with pytest.raises(pymysql.OperationalError):
            connect(local)
        provider.deprovision(ictx)
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("url", "error", "needle"),
    [
        ("", ConfigurationError, "MOORAGE_SERVICES_MYSQL_ADMIN_URL"),
        ("postgresql://moorage:pw@127.0.0.1:5432/", ConfigurationError, "mysql://user:password@host:port/"),
        ("mysql://nobody:wrong@127.0.0.1:{port}/", ProviderError, "could not use the MySQL server"),
    ],
)
def test_a_missing_or_wrong_admin_url_says_what_to_set(
    url: str,
    error: type[Exception],
    needle: str,
    mysql_server: RunningServer,
    mysql_offering: Offering,
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path).with_group(
        services={"mysql_admin_url": url.format(port=mysql_server.port)}
    )
    provider = MysqlProvider(settings)
    with pytest.raises(error, match=needle) as failure:
        provider.provision(instance_ctx(mysql_offering, "shared-small", settings))
    assert "wrong" not in str(failure.value), "the admin password is never in an error"
