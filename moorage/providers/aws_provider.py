"""What every AWS provider holds: one set of AWS clients, closed when the process stops.

Why a base class: the S3, SQS and RDS providers each talk to AWS through
:class:`moorage.clients.aws.AwsClients` (credentials, endpoint, retries from
``settings.aws``) and must release its connections on ``close``.
"""

from __future__ import annotations

from moorage.catalog.provider import Provider
from moorage.clients.aws import AwsClients
from moorage.settings import Settings


class AwsProvider(Provider):
    """A provider with ``self.aws``, AWS clients made from ``settings.aws``."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.aws = AwsClients(settings.aws)

    def close(self) -> None:
        self.aws.close()
