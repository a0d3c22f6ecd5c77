"""Servicer methods meet the error mapping here: :func:`rpc` wraps each one.

An :class:`~hpsearch.errors.HpsearchError` becomes the matching status code with its
message as the details (the mapping itself, both directions, is in :mod:`hpsearch.wire`,
which the client shares); anything else is an INTERNAL error whose traceback goes to the
chief's log, not to the caller.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import grpc

from hpsearch.errors import HpsearchError
from hpsearch.wire import status_of

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


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


__all__ = ["rpc"]
