"""Secrets at rest: credentials, generated passwords and secret parameters.

Why Fernet (from ``cryptography``): authenticated encryption with a versioned token
format, so a tampered or foreign value fails loudly instead of decrypting to garbage.
The key lives in a file created with mode 0600 on first start, or one the operator
provides (``MOORAGE_ENCRYPTION_KEY_FILE``). Several keys, one per line, allow rotation:
the first encrypts, all decrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from moorage.errors import ConfigurationError


class Encryptor:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigurationError("no encryption key given")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError as exc:
            raise ConfigurationError(f"invalid encryption key: {exc}") from None
        # Fingerprints use the oldest key, so adding a key (rotation) keeps them stable.
        self._digest_key = hashlib.sha256(b"moorage fingerprint\0" + keys[-1]).digest()
        self._oldest = keys[-1]

    def subkey(self, purpose: str) -> bytes:
        """A key for ``purpose`` alone (HMAC-SHA256 of it under the oldest key).

        Why derived: one secret to keep (the key file), yet a MAC key that leaks or is
        misused for one purpose says nothing about the encryption key or other purposes.
        """
        return hmac.new(self._oldest, b"moorage subkey\0" + purpose.encode(), hashlib.sha256).digest()

    @classmethod
    def from_file(cls, path: Path) -> Encryptor:
        """Load the key file, creating it (0600, parent 0700) when it does not exist."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key() + b"\n")
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigurationError(
                f"encryption key file {path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
            )
        keys = [line.strip() for line in path.read_bytes().splitlines() if line.strip()]
        return cls(keys)

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise ConfigurationError(
                "a stored secret cannot be decrypted with the configured key; is MOORAGE_ENCRYPTION_KEY_FILE right?"
            ) from None

    def encrypt_json(self, value: Any) -> bytes:
        return self.encrypt(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())

    def fingerprint(self, value: Any) -> str:
        """A keyed hash (HMAC-SHA256) of ``value`` as canonical JSON.

        For comparing requests that may carry secret parameters: unlike a plain hash, it
        cannot be used to guess a low-entropy secret offline without the key.
        """
        data = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        return hmac.new(self._digest_key, data, hashlib.sha256).hexdigest()

    def decrypt_json(self, token: bytes | None) -> Any:
        if not token:
            return {}
        return json.loads(self.decrypt(token))
