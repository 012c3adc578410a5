"""Close tokens sealed at rest with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`);
TOKEN_ENCRYPTION_KEY's first key seals, any of its keys opens (rotation)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bot.settings import split_keys


class SealBroken(Exception):
    """A sealed token none of the configured keys opens (a key was dropped too early)."""


class Sealer:
    def __init__(self, keys: str) -> None:
        fernets = [Fernet(key.encode("ascii")) for key in split_keys(keys)]
        if not fernets:
            raise ValueError("TOKEN_ENCRYPTION_KEY holds no key")
        self._fernet = MultiFernet(fernets)

    def seal(self, token: str) -> str:
        return self._fernet.encrypt(token.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            # No detail and no chained cause: neither the sealed text nor a key belongs in it.
            raise SealBroken(
                "a stored Close token cannot be opened with TOKEN_ENCRYPTION_KEY"
            ) from None

    def reseal(self, sealed: str) -> str:
        """The same token sealed with the first key (after a rotation)."""
        return self._fernet.rotate(sealed.encode("ascii")).decode("ascii")
