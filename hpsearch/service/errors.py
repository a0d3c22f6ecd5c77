"""The one place where hpsearch's domain errors meet gRPC status codes (both directions).

Servicer methods are wrapped with :func:`rpc`: an :class:`~hpsearch.errors.HpsearchError`
becomes the matching status code with its message as the details; anything else is an
INTERNAL error whose traceback goes to the chief's log, not to the caller.  The client
turns a status back into the same exception class with :func:`error_from_rpc`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import grpc

from hpsearch.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    HpsearchError,
    InvalidArgumentError,
    NotFoundError,
    StaleAttemptError,
    StorageError,
    UnauthenticatedError,
)

logger = logging.getLogger(__name__)

# Most specific first: StaleAttemptError is a FailedPreconditionError.
_TO_CODE: tuple[tuple[type[HpsearchError], grpc.StatusCode], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (StaleAttemptError, grpc.StatusCode.FAILED_PRECONDITION),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (StorageError, grpc.StatusCode.UNAVAILABLE),
)
_FROM_CODE: dict[grpc.StatusCode, type[HpsearchError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: UnauthenticatedError,
    grpc.StatusCode.UNAVAILABLE: StorageError,
}
# Details prefix marking a stale attempt, so the client can raise StaleAttemptError.
_STALE_PREFIX = "stale attempt: "

F = TypeVar("F", bound=Callable[..., Any])


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and details a servicer answers for ``error``."""
    for cls, code in _TO_CODE:
        if isinstance(error, cls):
            message = str(error) or cls.__name__
            if isinstance(error, StaleAttemptError):
                message = _STALE_PREFIX + message
            return code, message
    return grpc.StatusCode.INTERNAL, "internal error in the chief; see its log"


def rpc(method: F) -> F:
    """Decorate a servicer method: domain errors abort the call with their status code."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except HpsearchError as error:
            code, details = status_of(error)
            logger.info(
                "rpc refused method=%s code=%s details=%r", method.__name__, code.name, details
            )
            context.abort(code, details)
        except Exception as error:
            code, details = status_of(error)
            logger.exception("rpc failed method=%s", method.__name__)
            context.abort(code, details)

    return cast(F, wrapper)


def error_from_rpc(error: grpc.RpcError) -> HpsearchError:
    """The domain exception for a failed call (client side)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(code)
    if code is grpc.StatusCode.FAILED_PRECONDITION and details.startswith(_STALE_PREFIX):
        return StaleAttemptError(details[len(_STALE_PREFIX) :])
    cls = _FROM_CODE.get(code, HpsearchError)
    return cls(details)


__all__ = ["error_from_rpc", "rpc", "status_of"]
