"""The aws-sqs offering: one SQS queue per instance (standard or FIFO), one IAM user per binding.

Why these choices: the queue name is derived from the instance id, and ``CreateQueue`` is
idempotent for the same name and attributes, so a repeated or resumed provision lands on
the same queue. An optional dead-letter queue is created first (the main queue's redrive
policy names its ARN) and deleted last. Every queue is tagged with the instance id. A
binding's IAM user may use only this queue and its dead-letter queue.

Binding credentials: ``queue_url``, ``queue_arn``, ``queue_name``, ``region``,
``endpoint``, ``access_key_id``, ``secret_access_key``, and ``dlq_url``/``dlq_arn``
when the instance has a dead-letter queue.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from moorage.catalog.provider import BindingContext, BindResult, InstanceContext, ProvisionResult
from moorage.clients.aws import aws_code
from moorage.errors import ConflictError, NotFoundError, PermanentError, TemporaryError
from moorage.providers import aws_iam
from moorage.providers.aws_provider import AwsProvider

log = logging.getLogger(__name__)

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,75}$")
APP_ACTIONS = [
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:PurgeQueue",
]


def queue_name(instance_id: str, suffix: str = "", fifo: bool = False, prefix: str = "moorage-") -> str:
    """``<prefix><instance id>[-dlq][.fifo]`` within SQS's 80 characters, else a hash of the id."""
    base = f"{prefix}{instance_id}"
    if not QUEUE_NAME.match(base + suffix) or len(base + suffix) > 75:
        base = f"{prefix}{hashlib.sha256(instance_id.encode()).hexdigest()[:40]}"
    return base + suffix + (".fifo" if fifo else "")


class SqsProvider(AwsProvider):
    """Queues and binding users in one AWS account."""

    def _region(self, ctx: InstanceContext) -> str:
        return str(ctx.outputs.get("region") or ctx.config.get("region") or self.aws.region())

    def _names(self, ctx: InstanceContext) -> tuple[str, str]:
        fifo = bool(ctx.config.get("fifo"))
        prefix = str(ctx.config.get("queue_prefix", "moorage-"))
        return queue_name(ctx.instance_id, "", fifo, prefix), queue_name(
            ctx.instance_id, "-dlq", fifo, prefix
        )

    def _attributes(self, ctx: InstanceContext) -> dict[str, str]:
        attrs: dict[str, str] = {"SqsManagedSseEnabled": "true"}
        if ctx.config.get("fifo"):
            attrs["FifoQueue"] = "true"
            attrs["ContentBasedDeduplication"] = (
                "true" if ctx.parameters.get("content_based_deduplication") else "false"
            )
        for param, attr in (
            ("visibility_timeout", "VisibilityTimeout"),
            ("message_retention_seconds", "MessageRetentionPeriod"),
        ):
            if param in ctx.parameters:
                attrs[attr] = str(int(ctx.parameters[param]))
        return attrs

    def _create(self, name: str, region: str, attributes: dict[str, str], tags: dict[str, str]) -> str:
        try:
            url = self.aws.call(
                "sqs", "create_queue", region, QueueName=name, Attributes=attributes, tags=tags
            )["QueueUrl"]
        except ConflictError as exc:
            if aws_code(exc).endswith("QueueDeletedRecently"):  # SQS keeps the name for 60 s after a delete
                raise TemporaryError(
                    61, f"queue {name} was deleted less than 60 s ago; waiting to create it again"
                ) from None
            if aws_code(exc) not in {"QueueNameExists", "QueueAlreadyExists"}:
                raise
            url = self.aws.call("sqs", "get_queue_url", region, QueueName=name)["QueueUrl"]
            owner = (
                self.aws.call("sqs", "list_queue_tags", region, QueueUrl=url)
                .get("Tags", {})
                .get("moorage:instance-id")
            )
            if owner != tags["moorage:instance-id"]:
                raise PermanentError(
                    f"queue {name} exists and does not belong to this instance; nothing was changed"
                ) from None
            self.aws.call(
                "sqs", "set_queue_attributes", region, QueueUrl=url, Attributes=_settable(attributes)
            )
        return str(url)

    def _arn(self, url: str, region: str) -> str:
        attrs = self.aws.call(
            "sqs", "get_queue_attributes", region, QueueUrl=url, AttributeNames=["QueueArn"]
        )
        return str(attrs["Attributes"]["QueueArn"])

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        region = self._region(ctx)
        name, dlq_name = self._names(ctx)
        tags = aws_iam.instance_tags(ctx.instance_id)
        attributes = self._attributes(ctx)
        outputs: dict[str, Any] = {"region": region, "queue_name": name}
        if ctx.parameters.get("dead_letter_queue"):
            dlq_attrs = {k: v for k, v in attributes.items() if k in {"FifoQueue", "SqsManagedSseEnabled"}}
            dlq_attrs["MessageRetentionPeriod"] = str(14 * 24 * 3600)
            outputs["dlq_url"] = self._create(dlq_name, region, dlq_attrs, tags)
            outputs["dlq_arn"] = self._arn(outputs["dlq_url"], region)
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": outputs["dlq_arn"],
                    "maxReceiveCount": int(ctx.parameters.get("max_receive_count", 5)),
                }
            )
        outputs["queue_url"] = self._create(name, region, attributes, tags)
        outputs["queue_arn"] = self._arn(outputs["queue_url"], region)
        log.info("queue %s ready", name, extra={"instance_id": ctx.instance_id, "queue": name})
        return ProvisionResult(outputs=outputs)

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        wanted = ctx.parameters.get("dead_letter_queue")
        if wanted is not None and bool(wanted) != bool(ctx.outputs.get("dlq_url")):
            raise PermanentError(
                "a dead-letter queue can only be chosen when the instance is created; create a new instance instead"
            )
        region = self._region(ctx)
        attributes = _settable(self._attributes(ctx))
        if ctx.outputs.get("dlq_arn"):
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": ctx.outputs["dlq_arn"],
                    "maxReceiveCount": int(ctx.parameters.get("max_receive_count", 5)),
                }
            )
        self.aws.call(
            "sqs", "set_queue_attributes", region, QueueUrl=ctx.outputs["queue_url"], Attributes=attributes
        )
        return ProvisionResult(outputs=ctx.outputs)

    def deprovision(self, ctx: InstanceContext) -> None:
        region = self._region(ctx)
        for name in self._names(ctx):  # the main queue first: it refers to the DLQ
            try:
                url = self.aws.call("sqs", "get_queue_url", region, QueueName=name)["QueueUrl"]
                self.aws.call("sqs", "delete_queue", region, QueueUrl=url)
                log.info("deleted queue %s", name, extra={"instance_id": ctx.instance_id, "queue": name})
            except NotFoundError:
                continue

    def bind(self, ctx: BindingContext) -> BindResult:
        instance = ctx.instance
        out = instance.outputs
        if not out.get("queue_arn"):
            raise PermanentError(
                "the instance has no queue yet; wait until provisioning has finished, then bind"
            )
        resources = [out["queue_arn"], *([out["dlq_arn"]] if out.get("dlq_arn") else [])]
        policy = aws_iam.policy_document([{"Effect": "Allow", "Action": APP_ACTIONS, "Resource": resources}])
        keys = aws_iam.bind_user(self.aws, ctx, "moorage-sqs", policy)
        region = self._region(instance)
        credentials = {
            "queue_url": out["queue_url"],
            "queue_arn": out["queue_arn"],
            "queue_name": out["queue_name"],
            "region": region,
            "endpoint": self.aws.endpoint("sqs", region),
            "access_key_id": keys.access_key_id,
            "secret_access_key": keys.secret_access_key,
        }
        if out.get("dlq_url"):
            credentials.update(dlq_url=out["dlq_url"], dlq_arn=out["dlq_arn"])
        return BindResult(credentials=credentials, outputs=keys.outputs())

    def unbind(self, ctx: BindingContext) -> None:
        aws_iam.unbind_user(self.aws, ctx, "moorage-sqs")


def _settable(attributes: dict[str, str]) -> dict[str, str]:
    """Attributes SetQueueAttributes accepts (FifoQueue is fixed at creation)."""
    return {k: v for k, v in attributes.items() if k != "FifoQueue"}
