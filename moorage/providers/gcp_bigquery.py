"""The gcp-bigquery offering: one BigQuery dataset per instance, one service account per binding.

Why these choices: the dataset id and the account id are derived from the instance and
binding ids, so a repeated or resumed call finds what an earlier one made instead of
making a second. Each binding is granted its dataset only — an entry in the dataset's
``access`` list (``WRITER`` by default, ``READER`` by parameter) — never a project-wide
data role (the GCP broker's mistake: its BigQuery bindings could read every dataset).
Running queries needs ``roles/bigquery.jobUser`` on a project, which a dataset grant does
not give; it is granted only when the operator sets ``MOORAGE_GCP_GRANT_JOB_USER``.

A new key is handed out only once Google's token endpoint accepts it (IAM is eventually
consistent); until then bind checkpoints the key and raises :class:`TemporaryError`.
Deprovision refuses a dataset with tables unless ``force_delete`` (plan or parameter).

Credentials: ``PrivateKeyData`` (base64 of the key JSON, what Cloud Foundry apps and
spring-cloud-gcp read), ``credentials`` (the key JSON as a string), ``project_id``,
``dataset_id``, ``email``, ``location``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from typing import Any

from moorage.catalog.provider import BindingContext, BindResult, InstanceContext, Provider, ProvisionResult
from moorage.clients.google_bigquery import BigQueryClient, in_use
from moorage.clients.google_cloud import GoogleCredentials, IamClient, probe_key
from moorage.errors import ConflictError, NotFoundError, PermanentError, ProviderError, TemporaryError
from moorage.settings import Settings

log = logging.getLogger(__name__)

JOB_USER = "roles/bigquery.jobUser"
ROLES = {"writer": "WRITER", "reader": "READER"}
#: Seconds bind waits inside one call for a new key to work before checkpointing.
KEY_PROBE_SECONDS = 10.0
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{1,63}$")


def dataset_id(instance_id: str, prefix: str = "moorage_") -> str:
    """``<prefix><instance id>`` in BigQuery's alphabet (letters, digits, underscores).

    An id that needed changing gets a hash of the original appended, so two ids that differ
    only in a replaced character never share a dataset.
    """
    safe = re.sub(r"[^A-Za-z0-9_]", "_", instance_id)
    name = f"{prefix}{safe}"
    if safe != instance_id:
        name += "_" + hashlib.sha256(instance_id.encode()).hexdigest()[:12]
    return name[:1024]


def account_id(binding_id: str) -> str:
    """``moorage-<hash>``: 30 characters, IAM's limit; deterministic per binding."""
    return "moorage-" + hashlib.sha256(binding_id.encode()).hexdigest()[:22]


def label_value(value: str) -> str:
    return value if LABEL_VALUE.match(value) else hashlib.sha256(value.encode()).hexdigest()[:63]


class BigQueryProvider(Provider):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._creds: GoogleCredentials | None = None
        self._bq: BigQueryClient | None = None
        self._iam: IamClient | None = None

    # Google clients are made on first use: a broker that lists the catalog needs none.
    def _clients(self) -> tuple[BigQueryClient, IamClient]:
        if self._creds is None:
            self._creds = GoogleCredentials(self.settings.gcp)
            self._bq = BigQueryClient(self._creds)
            self._iam = IamClient(self._creds)
        assert self._bq is not None and self._iam is not None
        return self._bq, self._iam

    def close(self) -> None:
        if self._bq is not None:
            self._bq.close()

    # -- instances -------------------------------------------------------------------------

    def _dataset(self, ctx: InstanceContext) -> str:
        return str(
            ctx.outputs.get("dataset_id")
            or dataset_id(ctx.instance_id, ctx.config.get("dataset_prefix", "moorage_"))
        )

    def _location(self, ctx: InstanceContext) -> str:
        return str(
            ctx.outputs.get("location")
            or ctx.parameters.get("location")
            or ctx.config.get("location")
            or "US"
        )

    def _labels(self, ctx: InstanceContext) -> dict[str, str]:
        extra = {str(k): str(v) for k, v in (ctx.parameters.get("labels") or {}).items()}
        return {**extra, "moorage-instance": label_value(ctx.instance_id), "managed-by": "moorage"}

    def _description(self, ctx: InstanceContext) -> str:
        return str(ctx.parameters.get("description") or f"Moorage service instance {ctx.instance_id}")

    def provision(self, ctx: InstanceContext) -> ProvisionResult:
        bq, _ = self._clients()
        name, location = self._dataset(ctx), self._location(ctx)
        expiration = ctx.parameters.get("default_table_expiration_ms")
        try:
            bq.create_dataset(
                name,
                location=location,
                description=self._description(ctx),
                labels=self._labels(ctx),
                default_table_expiration_ms=int(expiration) if expiration else None,
            )
            log.info("created dataset %s", name, extra={"instance_id": ctx.instance_id, "dataset": name})
        except ConflictError:
            found = bq.get_dataset(name)
            owner = found.labels.get("moorage-instance")
            if owner != label_value(ctx.instance_id):
                raise PermanentError(
                    f"dataset {name} already exists and does not belong to instance {ctx.instance_id} "
                    f"(its moorage-instance label is {owner!r}); nothing was changed"
                ) from None
            location = found.location or location
        return ProvisionResult(outputs={"dataset_id": name, "location": location, "project_id": bq.project})

    def update(self, ctx: InstanceContext) -> ProvisionResult:
        location = ctx.parameters.get("location")
        if location and ctx.outputs.get("location") and location != ctx.outputs["location"]:
            raise PermanentError(
                f"a dataset cannot move between locations (it is in {ctx.outputs['location']}); "
                "create a new instance in the other location instead"
            )
        bq, _ = self._clients()
        expiration = ctx.parameters.get("default_table_expiration_ms")
        bq.update_dataset(
            self._dataset(ctx),
            description=self._description(ctx),
            labels=self._labels(ctx),
            default_table_expiration_ms=int(expiration) if expiration else None,
        )
        return ProvisionResult(outputs=ctx.outputs)

    def deprovision(self, ctx: InstanceContext) -> None:
        bq, _ = self._clients()
        name = self._dataset(ctx)
        force = bool(ctx.parameters.get("force_delete", ctx.config.get("force_delete", False)))
        try:  # without delete_contents BigQuery itself refuses a dataset with tables: no race
            bq.delete_dataset(name, delete_contents=force)
        except NotFoundError:
            pass
        except ProviderError as exc:
            if not in_use(exc):
                raise
            raise PermanentError(
                f"dataset {name} has tables, so it was not deleted; delete them first, or update the "
                'instance with {"force_delete": true} to delete them with the dataset'
            ) from None
        log.info("deleted dataset %s", name, extra={"instance_id": ctx.instance_id, "dataset": name})

    # -- bindings --------------------------------------------------------------------------

    def _email(self, ctx: BindingContext, iam: IamClient) -> str:
        return str(
            ctx.outputs.get("email") or f"{account_id(ctx.binding_id)}@{iam.project}.iam.gserviceaccount.com"
        )

    def _ensure_account(self, ctx: BindingContext, iam: IamClient) -> tuple[str, bool]:
        """The binding's account e-mail, and whether it was created just now."""
        description = f"moorage binding {ctx.binding_id} of instance {ctx.instance.instance_id}"
        try:
            account = iam.create_service_account(
                account_id(ctx.binding_id), f"moorage binding {ctx.binding_id}"[:100], description
            )
            log.info("created service account %s", account["email"], extra={"binding_id": ctx.binding_id})
            return str(account["email"]), True
        except ConflictError:
            account = iam.get_service_account(self._email(ctx, iam))
            if account.get("description") != description:
                raise PermanentError(
                    f"service account {account.get('email')} already exists and does not belong to "
                    f"binding {ctx.binding_id}; delete it, then bind again"
                ) from None
        return str(account["email"]), False

    def bind(self, ctx: BindingContext) -> BindResult:
        bq, iam = self._clients()
        instance = ctx.instance
        name, location = self._dataset(instance), self._location(instance)
        role = ROLES[str(ctx.parameters.get("role", "writer"))]
        email, fresh = self._ensure_account(ctx, iam)

        def grant(access: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            mine = [e for e in access if e.get("userByEmail") == email]
            if mine == [{"role": role, "userByEmail": email}]:
                return None
            return [e for e in access if e.get("userByEmail") != email] + [
                {"role": role, "userByEmail": email}
            ]

        bq.edit_access(name, grant)
        if self.settings.gcp.grant_job_user:
            iam.edit_project_policy(lambda policy: _add_member(policy, JOB_USER, f"serviceAccount:{email}"))
        outputs = {"email": email, "job_user": self.settings.gcp.grant_job_user}
        key_name, key = self._ensure_key(ctx, iam, email, fresh)
        outputs.update({"key_name": key_name, "key": json.dumps(key)})
        self._wait_until_key_works(key, email, outputs)
        key_json = json.dumps(key)
        credentials = {
            "PrivateKeyData": base64.b64encode(key_json.encode()).decode(),
            "credentials": key_json,
            "project_id": bq.project,
            "dataset_id": name,
            "email": email,
            "location": location,
        }
        return BindResult(credentials=credentials, outputs=outputs)

    def _ensure_key(
        self, ctx: BindingContext, iam: IamClient, email: str, fresh: bool
    ) -> tuple[str, dict[str, Any]]:
        """The checkpointed key if it still exists; otherwise exactly one new key."""
        existing = [] if fresh else iam.key_names(email)  # an account made just now has none
        known = ctx.outputs.get("key_name")
        if known in existing and ctx.outputs.get("key"):
            return str(known), json.loads(str(ctx.outputs["key"]))
        for name in existing:  # made by a call whose answer was lost: no private key, no use
            _ignore_missing(lambda name=name: iam.delete_key(name))
        try:
            name, key = iam.create_key(email)
        except NotFoundError:  # a new account can take a few seconds to be visible everywhere
            raise TemporaryError(
                2.0, f"service account {email} is not visible to IAM yet; IAM is eventually consistent"
            ) from None
        log.info("created key for service account %s", email, extra={"binding_id": ctx.binding_id})
        return name, key

    def _wait_until_key_works(self, key: dict[str, Any], email: str, outputs: dict[str, Any]) -> None:
        deadline = time.monotonic() + KEY_PROBE_SECONDS
        delay = 0.05
        while True:
            try:
                probe_key(key)
                return
            except ProviderError as exc:
                if time.monotonic() + delay > deadline:
                    raise TemporaryError(
                        5.0,
                        f"the new key of service account {email} is not accepted yet ({exc.message}); "
                        "IAM is eventually consistent",
                        outputs=outputs,
                    ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def unbind(self, ctx: BindingContext) -> None:
        bq, iam = self._clients()
        email = self._email(ctx, iam)

        def revoke(access: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            kept = [e for e in access if e.get("userByEmail") != email]
            return kept if len(kept) != len(access) else None

        _ignore_missing(lambda: bq.edit_access(self._dataset(ctx.instance), revoke))
        if ctx.outputs.get("job_user") or self.settings.gcp.grant_job_user:
            iam.edit_project_policy(lambda policy: _remove_member(policy, f"serviceAccount:{email}"))
        if ctx.outputs.get("key_name"):  # a key the binding never recorded goes with its account
            _ignore_missing(lambda: iam.delete_key(str(ctx.outputs["key_name"])))
        _ignore_missing(lambda: iam.delete_service_account(email))
        log.info("deleted service account %s", email, extra={"binding_id": ctx.binding_id})


def _ignore_missing(call: Any) -> None:
    try:
        call()
    except NotFoundError:
        pass


def _add_member(policy: dict[str, Any], role: str, member: str) -> bool:
    bindings = policy.setdefault("bindings", [])
    for binding in bindings:
        if binding.get("role") == role and not binding.get("condition"):
            if member in binding.setdefault("members", []):
                return False
            binding["members"].append(member)
            return True
    bindings.append({"role": role, "members": [member]})
    return True


def _remove_member(policy: dict[str, Any], member: str) -> bool:
    """Drop the member (and bindings left empty, which Google keeps otherwise: GCP broker #474)."""
    changed = False
    for binding in policy.get("bindings", []):
        if member in binding.get("members", []):
            binding["members"] = [m for m in binding["members"] if m != member]
            changed = True
    policy["bindings"] = [b for b in policy.get("bindings", []) if b.get("members")]
    return changed
