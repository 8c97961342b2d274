"""Which Python class serves each ``provider:`` name in the offering files.

Why import strings: a broker that offers only PostgreSQL never imports boto3 or the
Kubernetes client, which keeps start-up fast and memory low.
"""

from __future__ import annotations

import importlib
import threading

from moorage.catalog.provider import Provider
from moorage.errors import ConfigurationError
from moorage.settings import Settings

PROVIDERS: dict[str, str] = {
    "noop": "moorage.providers.noop:NoopProvider",
    "postgres": "moorage.providers.postgres:PostgresProvider",
    "redis": "moorage.providers.redis:RedisProvider",
    "mysql": "moorage.providers.mysql:MysqlProvider",
    "aws-s3": "moorage.providers.aws_s3:S3Provider",
    "aws-sqs": "moorage.providers.aws_sqs:SqsProvider",
    "aws-rds-postgresql": "moorage.providers.aws_rds:RdsPostgresProvider",
    "gcp-bigquery": "moorage.providers.gcp_bigquery:BigQueryProvider",
    "k8s-postgresql": "moorage.providers.k8s_postgres:K8sPostgresProvider",
    "k8s-redis": "moorage.providers.k8s_redis:K8sRedisProvider",
}


class ProviderRegistry:
    """Creates each provider once, on first use, and closes them all at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Provider:
        with self._lock:
            provider = self._providers.get(name)
            if provider is None:
                provider = self._providers[name] = load_provider_class(name)(self.settings)
            return provider

    def close(self) -> None:
        with self._lock:
            for provider in self._providers.values():
                provider.close()
            self._providers.clear()


def load_provider_class(name: str) -> type[Provider]:
    target = PROVIDERS.get(name)
    if target is None:
        raise ConfigurationError(
            f"unknown provider {name!r}; known providers: {', '.join(sorted(PROVIDERS))}"
        )
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
