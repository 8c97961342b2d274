"""A stand-in for Google IAM, Cloud Resource Manager's project policy and Google's OAuth
token endpoint — the parts of Google Cloud that no emulator offers.

What it stands in for, and how faithfully:

* **IAM v1 REST** (``iam.googleapis.com``): service accounts (create, 409 on a duplicate,
  get and delete by e-mail or unique id, also under ``projects/-``) and their keys (create,
  list, delete). A key is a real 2048-bit RSA key; ``privateKeyData`` is the base64 of the
  service-account key JSON Google issues, which the real google-auth loads as it is.
* **Cloud Resource Manager v1** ``projects:getIamPolicy`` / ``setIamPolicy`` with etags
  (409 ``ABORTED`` on a stale one), enough for a project-level role grant.
* **The OAuth 2.0 token endpoint** (``oauth2.googleapis.com/token``): the JWT-bearer grant
  a service-account key signs. It verifies the signature against the public half of the
  key it issued, the audience, issuer and expiry, and refuses keys that were deleted (or
  whose account was) with ``invalid_grant`` — so a test can show that an unbound key stops
  working. ``propagation_seconds`` makes a new key refused for a while, and
  ``account_propagation_seconds`` a new account unknown to key creation, as real IAM's
  eventual consistency does.

Every IAM and policy call needs a bearer token this endpoint issued, to a live account.
Errors have Google's shape ``{"error": {"code", "message", "status"}}``. It does not
model IAM permissions (any live account may call anything) or quotas.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
AUDIENCE = "https://oauth2.googleapis.com/token"
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}


class GoogleError(Exception):
    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status = (
            code,
            message,
            status or STATUS.get(code, "FAILED_PRECONDITION"),
        )


@dataclass
class Key:
    key_id: str
    email: str
    public_pem: bytes
    created: float
    deleted: bool = False


@dataclass
class Account:
    project: str
    account_id: str
    email: str
    unique_id: str
    display_name: str
    description: str
    created: float = field(default_factory=time.time)

    def resource(self) -> dict[str, Any]:
        return {
            "name": f"projects/{self.project}/serviceAccounts/{self.email}",
            "projectId": self.project,
            "uniqueId": self.unique_id,
            "email": self.email,
            "displayName": self.display_name,
            "description": self.description,
            "etag": base64.b64encode(self.unique_id.encode()).decode(),
            "oauth2ClientId": self.unique_id,
        }


@dataclass
class IamState:
    accounts: dict[str, Account] = field(default_factory=dict)
    keys: dict[str, Key] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    propagation_seconds: float = 0.0
    #: Seconds a new account stays invisible to key creation (404), as in IAM.
    account_propagation_seconds: float = 0.0
    #: Requests per route shape ("POST keys", "POST token", …), for tests.
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)


class IamStandIn:
    """The server, started on a free loopback port in a thread of the test process."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.state = IamState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.token_uri = f"{self.url}/token"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what tests look at ----------------------------------------------------------------

    def bootstrap_admin(self, account_id: str = "broker-admin") -> dict[str, Any]:
        """The broker's own service account and key JSON (what an operator downloads)."""
        self._create_account(self.project, {"accountId": account_id})
        account = self._find(self.project, f"{account_id}@{self.project}.iam.gserviceaccount.com")
        return json.loads(base64.b64decode(self._create_key(account)["privateKeyData"]))

    def accounts(self, prefix: str = "") -> list[str]:
        with self.state.lock:
            return sorted(e for e in self.state.accounts if e.startswith(prefix))

    def live_keys(self, email: str) -> list[str]:
        with self.state.lock:
            return [k.key_id for k in self.state.keys.values() if k.email == email and not k.deleted]

    def policy(self) -> dict[str, Any]:
        with self.state.lock:
            return json.loads(json.dumps(self._policy(self.project)))

    def count(self, route: str) -> int:
        with self.state.lock:
            return self.state.counts.get(route, 0)

    # -- service accounts and keys ----------------------------------------------------------

    def _find(self, project: str, ident: str) -> Account:
        with self.state.lock:
            for account in self.state.accounts.values():
                if ident in (account.email, account.unique_id) and project in ("-", account.project):
                    return account
        raise GoogleError(404, f"Service account projects/{project}/serviceAccounts/{ident} does not exist.")

    def _create_account(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        account_id = str(body.get("accountId", ""))
        if not ACCOUNT_ID.match(account_id):
            raise GoogleError(
                400,
                f"Invalid account ID {account_id!r}: must match [a-z]([-a-z0-9]*[a-z0-9]), 6-30 characters.",
            )
        email = f"{account_id}@{project}.iam.gserviceaccount.com"
        sa = body.get("serviceAccount") or {}
        with self.state.lock:
            if email in self.state.accounts:
                raise GoogleError(
                    409, f"Service account {account_id} already exists within project projects/{project}."
                )
            account = Account(
                project,
                account_id,
                email,
                str(secrets.randbelow(10**20)).zfill(21),
                str(sa.get("displayName", "")),
                str(sa.get("description", "")),
            )
            self.state.accounts[email] = account
        return account.resource()

    def _delete_account(self, project: str, ident: str) -> dict[str, Any]:
        account = self._find(project, ident)
        with self.state.lock:
            del self.state.accounts[account.email]
            for key in self.state.keys.values():
                if key.email == account.email:
                    key.deleted = True
            for policy in self.state.policies.values():  # as Google: the member is marked deleted
                for binding in policy["bindings"]:
                    binding["members"] = [
                        f"deleted:{m}?uid={account.unique_id}"
                        if m == f"serviceAccount:{account.email}"
                        else m
                        for m in binding["members"]
                    ]
        return {}

    def _create_key(self, account: Account) -> dict[str, Any]:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_id = secrets.token_hex(20)
        info = {
            "type": "service_account",
            "project_id": account.project,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": account.email,
            "client_id": account.unique_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{account.email}",
            "universe_domain": "googleapis.com",
        }
        with self.state.lock:
            self.state.keys[key_id] = Key(key_id, account.email, public, time.time())
        return {
            **self._key_resource(account, key_id),
            "privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
            "privateKeyData": base64.b64encode(json.dumps(info).encode()).decode(),
        }

    def _key_resource(self, account: Account, key_id: str) -> dict[str, Any]:
        return {
            "name": f"projects/{account.project}/serviceAccounts/{account.email}/keys/{key_id}",
            "keyAlgorithm": "KEY_ALG_RSA_2048",
            "keyOrigin": "GOOGLE_PROVIDED",
            "keyType": "USER_MANAGED",
            "validAfterTime": "2026-01-01T00:00:00Z",
            "validBeforeTime": "9999-12-31T23:59:59Z",
        }

    def _keys(self, account: Account) -> dict[str, Any]:
        return {"keys": [self._key_resource(account, k) for k in self.live_keys(account.email)]}

    def _delete_key(self, account: Account, key_id: str) -> dict[str, Any]:
        with self.state.lock:
            key = self.state.keys.get(key_id)
            if key is None or key.deleted or key.email != account.email:
                raise GoogleError(404, f"Service account key {key_id} does not exist.")
            key.deleted = True
        return {}

    # -- project policy ---------------------------------------------------------------------

    def _policy(self, project: str) -> dict[str, Any]:
        return self.state.policies.setdefault(project, {"version": 1, "etag": "BwAAAA==", "bindings": []})

    def _set_policy(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        new = body.get("policy") or {}
        with self.state.lock:
            current = self._policy(project)
            if new.get("etag") and new["etag"] != current["etag"]:
                raise GoogleError(
                    409,
                    "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
                    "ABORTED",
                )
            etag = base64.b64encode(secrets.token_bytes(6)).decode()
            bindings = [b for b in new.get("bindings", []) if b.get("members")]
            self.state.policies[project] = {"version": 1, "etag": etag, "bindings": bindings}
            return json.loads(json.dumps(self.state.policies[project]))

    # -- OAuth ------------------------------------------------------------------------------

    def _token(self, form: dict[str, list[str]]) -> dict[str, Any]:
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            raise _OAuthError("unsupported_grant_type", "Invalid grant_type.")
        assertion = (form.get("assertion") or [""])[0]
        try:
            header = jwt.decode_header(assertion)
        except (ValueError, auth_exceptions.GoogleAuthError):
            raise _OAuthError("invalid_request", "Invalid JWT.") from None
        with self.state.lock:
            key = self.state.keys.get(str(header.get("kid", "")))
            usable = key is not None and not key.deleted and key.email in self.state.accounts
            fresh = key is not None and time.time() - key.created < self.state.propagation_seconds
        if not usable or key is None:
            raise _OAuthError("invalid_grant", "Invalid JWT Signature.")
        if fresh:
            raise _OAuthError("invalid_grant", "Invalid JWT Signature.")
        try:
            claims = jwt.decode(assertion, certs={key.key_id: key.public_pem.decode()}, audience=AUDIENCE)
        except (ValueError, auth_exceptions.GoogleAuthError) as exc:
            raise _OAuthError("invalid_grant", f"Invalid JWT: {exc}") from None
        if claims.get("iss") != key.email:
            raise _OAuthError("invalid_grant", "Invalid JWT: the issuer is not the key's account.")
        token = "ya29.standin-" + secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.tokens[token] = key.email
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def caller(self, authorization: str) -> str:
        token = authorization.removeprefix("Bearer ").strip()
        with self.state.lock:
            email = self.state.tokens.get(token)
            if email is None or email not in self.state.accounts:
                raise GoogleError(
                    401, "Request had invalid authentication credentials. Expected OAuth 2 access token."
                )
            return email

    # -- routing ----------------------------------------------------------------------------

    def route(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        match parts:
            case ["v1", "projects", project, "serviceAccounts"] if method == "POST":
                return self._create_account(project, body)
            case ["v1", "projects", project, "serviceAccounts", ident] if method == "GET":
                return self._find(project, ident).resource()
            case ["v1", "projects", project, "serviceAccounts", ident] if method == "DELETE":
                return self._delete_account(project, ident)
            case ["v1", "projects", project, "serviceAccounts", ident, "keys"] if method == "POST":
                account = self._find(project, ident)
                if time.time() - account.created < self.state.account_propagation_seconds:
                    raise GoogleError(
                        404, f"Service account projects/{project}/serviceAccounts/{ident} does not exist."
                    )
                return self._create_key(account)
            case ["v1", "projects", project, "serviceAccounts", ident, "keys"] if method == "GET":
                return self._keys(self._find(project, ident))
            case ["v1", "projects", project, "serviceAccounts", ident, "keys", key_id] if method == "DELETE":
                return self._delete_key(self._find(project, ident), key_id)
            case ["v1", "projects", resource] if method == "POST" and resource.endswith(":getIamPolicy"):
                with self.state.lock:
                    return json.loads(json.dumps(self._policy(resource.removesuffix(":getIamPolicy"))))
            case ["v1", "projects", resource] if method == "POST" and resource.endswith(":setIamPolicy"):
                return self._set_policy(resource.removesuffix(":setIamPolicy"), body)
        raise GoogleError(404, f"No route {method} {path} in the IAM stand-in.")


class _OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


def _route_name(method: str, path: str) -> str:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if path.rstrip("/").endswith("/token"):
        return "POST token"
    if "/keys" in path:
        return f"{method} keys"
    if ":" in last:
        return f"POST {last.split(':')[-1]}"
    return f"{method} serviceAccounts"


def _handler(standin: IamStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return None

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            with standin.state.lock:
                name = _route_name(self.command, path)
                standin.state.counts[name] = standin.state.counts.get(name, 0) + 1
            if path == "/token":
                try:
                    self._reply(200, standin._token(parse_qs(raw.decode())))
                except _OAuthError as exc:
                    self._reply(400, {"error": exc.error, "error_description": exc.description})
                return
            try:
                standin.caller(self.headers.get("Authorization", ""))
                self._reply(200, standin.route(self.command, path, json.loads(raw or b"{}")))
            except GoogleError as exc:
                self._reply(
                    exc.code, {"error": {"code": exc.code, "message": exc.message, "status": exc.status}}
                )
            except json.JSONDecodeError:
                self._reply(
                    400,
                    {
                        "error": {
                            "code": 400,
                            "message": "Invalid JSON payload.",
                            "status": "INVALID_ARGUMENT",
                        }
                    },
                )

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_PATCH = _handle

    return Handler
