"""Why a process could not connect, as the error it raises: a refused login is not an
unreachable broker (retrying with the same password cannot help)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from aiormq.exceptions import ProbableAuthenticationError

from backbone.broker.tls import connection_problem
from backbone.errors import BrokerLoginRefusedError, BrokerUnavailableError

__all__ = ["broker_failure"]


def broker_failure(error: BaseException, who: str, url: str) -> BrokerUnavailableError:
    """The error to raise when ``who`` (``"adapter X"``, ``"the router"``) could not connect
    to ``url``; only the user name is taken from the URL, never the password."""
    if isinstance(error, ProbableAuthenticationError):
        user = unquote(urlsplit(url).username or "guest")
        return BrokerLoginRefusedError(
            f"{who}: the broker refused the login of user {user!r} (ACCESS_REFUSED): check "
            "the password in amqp_url and that the user exists (backbone provision)"
        )
    return BrokerUnavailableError(f"{who} cannot reach the broker: {connection_problem(error)}")
