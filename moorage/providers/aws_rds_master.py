"""Where an RDS instance's master password lives: Moorage's state or Secrets Manager.

Why apart from the provider: the password must be generated and kept *before* the
instance is created (a crash between the two must not lose it), read back whenever the
provider connects as master to manage binding roles, and removed with the instance.
With ``settings.aws.use_secrets_manager`` it lives in a secret whose ARN alone is kept;
otherwise in the instance's outputs, which the operation engine encrypts at rest. Apps
never see it: bindings get their own roles.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping
from typing import Any

from moorage.clients.aws import AwsClients, aws_code
from moorage.errors import ConflictError, NotFoundError, PermanentError, TemporaryError
from moorage.providers import aws_iam
from moorage.providers.postgres import instance_names, short_hash

PASSWORD_ALPHABET = string.ascii_letters + string.digits


def db_identifier(instance_id: str) -> str:
    """``moorage-<hash>``: a valid, stable DBInstanceIdentifier whatever the instance id."""
    return f"moorage-{short_hash(instance_id, 20)}"


def master_username(instance_id: str) -> str:
    return f"{instance_names(instance_id)[0]}_master"


class MasterPasswords:
    def __init__(self, aws: AwsClients, use_secrets_manager: bool) -> None:
        self.aws = aws
        self.use_secrets_manager = use_secrets_manager

    def ensure(self, instance_id: str, outputs: dict[str, Any]) -> str:
        """Generate once and checkpoint before anything uses it, so a crash never loses it."""
        if self.use_secrets_manager:
            return self._secret(instance_id, outputs)
        if not outputs.get("master_password"):
            outputs["master_password"] = _new_password()
            raise TemporaryError(0, "generated the RDS master password", outputs=outputs)
        return str(outputs["master_password"])

    def stored(self, instance_id: str, outputs: Mapping[str, Any]) -> str:
        if self.use_secrets_manager:
            found = self.aws.call("secretsmanager", "get_secret_value", SecretId=_secret_name(instance_id))
            return str(json.loads(found["SecretString"])["password"])
        return str(outputs["master_password"])

    def forget(self, instance_id: str, keep_days: int) -> None:
        """Delete the secret (after ``keep_days``, or at once); nothing to do without one."""
        if not self.use_secrets_manager:
            return
        params: dict[str, Any] = {"SecretId": _secret_name(instance_id)}
        if keep_days:
            params["RecoveryWindowInDays"] = keep_days
        else:
            params["ForceDeleteWithoutRecovery"] = True
        try:
            self.aws.call("secretsmanager", "delete_secret", **params)
        except (NotFoundError, PermanentError) as exc:
            if isinstance(exc, PermanentError) and aws_code(exc) != "InvalidRequestException":
                raise  # InvalidRequestException: already scheduled for deletion

    def _secret(self, instance_id: str, outputs: dict[str, Any]) -> str:
        name = _secret_name(instance_id)
        value = json.dumps({"username": master_username(instance_id), "password": _new_password()})
        tags = [{"Key": k, "Value": v} for k, v in aws_iam.instance_tags(instance_id).items()]
        try:
            outputs["master_secret_arn"] = self.aws.call(
                "secretsmanager", "create_secret", Name=name, SecretString=value, Tags=tags
            )["ARN"]
        except ConflictError as exc:
            if aws_code(exc) != "ResourceExistsException":
                raise
        found = self.aws.call("secretsmanager", "get_secret_value", SecretId=name)
        outputs["master_secret_arn"] = found["ARN"]
        return str(json.loads(found["SecretString"])["password"])


def _secret_name(instance_id: str) -> str:
    return f"moorage/rds/{db_identifier(instance_id)}/master"


def _new_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(32))
