"""One IAM user per binding: what S3 and SQS bindings hand to apps.

Why per binding and not per instance (as the AWS broker did): unbinding one app must
revoke exactly that app's keys, and a leaked key must only reach the one resource it was
made for. Each binding gets ``/moorage/<prefix>-<binding id>`` with one inline policy
naming only its instance's resources, and one access key.

Every step is idempotent, because bind and unbind are called again after a crash:
``CreateUser`` tolerates "already exists", the inline policy is simply overwritten, and a
key is reused only when the previous call recorded its secret (a key whose secret was
lost is deleted and replaced). IAM is eventually consistent: a new key is only handed
out once a request signed with it succeeds; until then the caller gets a
:class:`TemporaryError` that checkpoints the key. Deletion follows IAM's order: access
keys, inline policies, then the user.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moorage.catalog.provider import BindingContext
from moorage.clients.aws import AwsClients, aws_code
from moorage.errors import ConflictError, NotFoundError, PermanentError, ProviderError, TemporaryError

log = logging.getLogger(__name__)

IAM_PATH = "/moorage/"
POLICY_NAME = "moorage-binding"
#: Seconds bind waits inside one call for a new key to work before checkpointing.
KEY_PROBE_SECONDS = 10.0


@dataclass(frozen=True)
class BindingKeys:
    user_name: str
    access_key_id: str
    secret_access_key: str

    def outputs(self) -> dict[str, str]:
        return {
            "iam_user": self.user_name,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
        }


def instance_tags(instance_id: str) -> dict[str, str]:
    """Tags on every AWS resource Moorage creates, so none is orphaned untraceably."""
    return {"moorage:instance-id": instance_id, "moorage:managed-by": "moorage"}


def user_name(prefix: str, binding_id: str) -> str:
    """``<prefix>-<binding id>``, within IAM's 64 characters and allowed alphabet.

    IAM user names are case-insensitive: an id with capitals is hashed (case-sensitively),
    so two binding ids that differ only in case never share a user.
    """
    safe = "".join(c if c.isalnum() or c in "+=,.@_-" else "-" for c in binding_id)
    name = f"{prefix}-{safe}"
    if len(name) > 64 or safe != binding_id or binding_id != binding_id.lower():
        name = f"{prefix}-{hashlib.sha256(binding_id.encode()).hexdigest()[: 63 - len(prefix)]}"
    return name


def policy_document(statements: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, separators=(",", ":"))


def bind_user(clients: AwsClients, ctx: BindingContext, prefix: str, policy: str) -> BindingKeys:
    """The binding's user ``<prefix>-<binding id>``, tagged with its instance and binding."""
    return ensure_binding_user(
        clients,
        name=user_name(prefix, ctx.binding_id),
        policy=policy,
        tags={**instance_tags(ctx.instance.instance_id), "moorage:binding-id": ctx.binding_id},
        previous=ctx.outputs,
    )


def unbind_user(clients: AwsClients, ctx: BindingContext, prefix: str) -> None:
    """Delete the binding's user: the one its outputs name, else the one ``bind_user`` would make."""
    delete_binding_user(clients, str(ctx.outputs.get("iam_user") or user_name(prefix, ctx.binding_id)))


def ensure_binding_user(
    clients: AwsClients,
    *,
    name: str,
    policy: str,
    tags: Mapping[str, str],
    previous: Mapping[str, Any],
) -> BindingKeys:
    """Create (or complete) the binding's user, policy and key; return working keys."""
    fresh = True
    try:
        clients.call(
            "iam",
            "create_user",
            UserName=name,
            Path=IAM_PATH,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
    except ConflictError as exc:
        if aws_code(exc) != "EntityAlreadyExists":
            raise
        _check_ours(clients, name, tags)
        fresh = False
    clients.call("iam", "put_user_policy", UserName=name, PolicyName=POLICY_NAME, PolicyDocument=policy)

    existing = (
        []  # a user created just now has no keys
        if fresh
        else [
            k["AccessKeyId"]
            for k in clients.pages("iam", "list_access_keys", "AccessKeyMetadata", UserName=name)
        ]
    )
    known_id = previous.get("access_key_id")
    if known_id in existing and previous.get("secret_access_key"):
        keys = BindingKeys(name, str(known_id), str(previous["secret_access_key"]))
    else:
        for key_id in existing:  # created by a call whose answer was lost: no secret, no use
            _ignore_missing(clients, "delete_access_key", UserName=name, AccessKeyId=key_id)
        created = clients.call("iam", "create_access_key", UserName=name)["AccessKey"]
        keys = BindingKeys(name, created["AccessKeyId"], created["SecretAccessKey"])
        log.info("created access key for IAM user %s", name, extra={"iam_user": name})
    wait_until_key_works(clients, keys)
    return keys


def wait_until_key_works(clients: AwsClients, keys: BindingKeys, seconds: float = KEY_PROBE_SECONDS) -> None:
    """Return once a request signed with the new key succeeds; else checkpoint and retry later."""
    probe = clients.with_keys(keys.access_key_id, keys.secret_access_key)
    deadline = time.monotonic() + seconds
    delay = 0.05
    try:
        while True:
            try:
                probe.call("sts", "get_caller_identity")
                return
            except (PermanentError, ProviderError) as exc:
                if time.monotonic() + delay > deadline:
                    raise TemporaryError(
                        5.0,
                        f"the new access key of IAM user {keys.user_name} is not usable yet "
                        f"(AWS {aws_code(exc) or 'error'}); IAM is eventually consistent",
                        outputs=keys.outputs(),
                    ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    finally:
        probe.close()


def delete_binding_user(clients: AwsClients, name: str) -> None:
    """Delete keys, inline policies, then the user; a user already gone is success.

    The common case costs four calls (our one policy is known by name); anything else
    attached to the user (``DeleteConflict``) is found by listing and removed too.
    """
    try:
        key_ids = [
            k["AccessKeyId"]
            for k in clients.pages("iam", "list_access_keys", "AccessKeyMetadata", UserName=name)
        ]
    except NotFoundError:
        return
    for key_id in key_ids:
        _ignore_missing(clients, "delete_access_key", UserName=name, AccessKeyId=key_id)
    _ignore_missing(clients, "delete_user_policy", UserName=name, PolicyName=POLICY_NAME)
    try:
        _ignore_missing(clients, "delete_user", UserName=name)
    except ConflictError:
        _delete_everything_of(clients, name)
        _ignore_missing(clients, "delete_user", UserName=name)
    log.info("deleted IAM user %s", name, extra={"iam_user": name})


def _delete_everything_of(clients: AwsClients, name: str) -> None:
    for key in clients.pages("iam", "list_access_keys", "AccessKeyMetadata", UserName=name):
        _ignore_missing(clients, "delete_access_key", UserName=name, AccessKeyId=key["AccessKeyId"])
    for policy in clients.pages("iam", "list_user_policies", "PolicyNames", UserName=name):
        _ignore_missing(clients, "delete_user_policy", UserName=name, PolicyName=policy)
    for attached in clients.pages("iam", "list_attached_user_policies", "AttachedPolicies", UserName=name):
        _ignore_missing(clients, "detach_user_policy", UserName=name, PolicyArn=attached["PolicyArn"])


def _ignore_missing(clients: AwsClients, operation: str, **params: Any) -> None:
    try:
        clients.call("iam", operation, **params)
    except NotFoundError:
        pass


def _check_ours(clients: AwsClients, name: str, tags: Mapping[str, str]) -> None:
    """An existing user of that name must carry our binding tag, or we refuse to touch it."""
    found = {t["Key"]: t["Value"] for t in clients.pages("iam", "list_user_tags", "Tags", UserName=name)}
    key = "moorage:binding-id"
    if key in tags and found.get(key) != tags[key]:
        raise PermanentError(
            f"IAM user {name} already exists and does not belong to this binding "
            f"(tag {key} is {found.get(key)!r}); delete or rename it, then bind again"
        )
