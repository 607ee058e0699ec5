"""Bearer tokens for the tracking API: who is asking.

The router's settings map the SHA-256 (hex) of each token to an organ code (the agency sees
what it sent and received), to several separated by commas (a hub's staff: what any of the
agencies it serves sent and received), or to ``operator`` (sees everything). Only hashes
are kept, so the settings file gives no token away; tokens are minted with ``backbone track
token`` and never logged.
"""

# No ``from __future__ import annotations``: FastAPI reads the annotations of the routes
# made in the functions below at run time, and they name local dependencies.
import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backbone.errors import OrganCodeError
from backbone.organ import OrganCode
from backbone.tracking.model import Principal

__all__ = ["OPERATOR", "TokenBook", "hash_token", "mint_token", "parse_holder"]

OPERATOR = "operator"
_HEX = frozenset("0123456789abcdef")


def hash_token(token: str) -> str:
    """What the settings hold for ``token``: its SHA-256, lowercase hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def mint_token() -> tuple[str, str]:
    """A new token (256 random bits, URL-safe) and its hash."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


class TokenBook:
    """Token hashes and whom they stand for; :meth:`dependency` authenticates a request."""

    def __init__(self, holders: Mapping[str, str]) -> None:
        """``holders`` maps a token's SHA-256 hex to organ codes (comma-separated) or
        ``operator``. Raise
        ``ValueError`` for a malformed entry (never quoting the hash)."""
        self._holders: dict[str, Principal] = {}
        for position, (digest, holder) in enumerate(holders.items(), start=1):
            if len(digest) != 64 or not set(digest) <= _HEX:
                raise ValueError(f"tracking token {position}: not a SHA-256 in lowercase hex")
            self._holders[digest] = _principal(holder, position)

    def __len__(self) -> int:
        return len(self._holders)

    def principal_of(self, token: str) -> Principal | None:
        return self._holders.get(hash_token(token))

    def dependency(
        self,
    ) -> Callable[[HTTPAuthorizationCredentials | None], Awaitable[Principal]]:
        """A FastAPI dependency answering 401 without a known bearer token."""
        bearer = HTTPBearer(auto_error=False, description="a tracking token")

        async def authenticated(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        ) -> Principal:
            principal = None if credentials is None else self.principal_of(credentials.credentials)
            if principal is None:
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "a valid bearer token is required",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return principal

        return authenticated


def parse_holder(holder: str) -> Principal:
    """Whom a settings entry stands for: ``operator``, or organ codes separated by commas.
    Raise ``ValueError`` naming the first part that is neither."""
    if holder.strip() == OPERATOR:
        return Principal(operator=True)
    codes = []
    for part in holder.split(","):
        try:
            codes.append(str(OrganCode.parse(part.strip())))
        except OrganCodeError:
            raise ValueError(
                f"{part.strip()!r} is neither an organ code nor {OPERATOR!r}"
            ) from None
    return Principal(agencies=tuple(dict.fromkeys(codes)))


def _principal(holder: str, position: int) -> Principal:
    try:
        return parse_holder(holder)
    except ValueError as error:
        raise ValueError(f"tracking token {position}: {error}") from None
