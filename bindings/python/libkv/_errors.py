"""Exceptions, one class per libkv status code.

    Error
     +-- NotFoundError (also KeyError)       KV_ENOTFOUND: db[key], del db[key]
     +-- ConflictError                       KV_ECONFLICT: .version is the current one
     +-- InvalidArgumentError (ValueError)   KV_EINVAL
     +-- TooBigError (ValueError)            KV_ETOOBIG
     +-- RetryableError                      nothing was changed: safe to retry
     |    +-- UnavailableError               KV_EUNAVAILABLE: too few replicas
     |    +-- TimedOutError                  KV_ETIMEDOUT
     +-- UnknownOutcomeError                 KV_EUNKNOWN_OUTCOME: a write may
     |                                       have applied; re-read first
     +-- CorruptError                        KV_ECORRUPT
     +-- StorageError                        KV_EIO
     +-- ClosedError                         KV_ECLOSED, and any call after close()
     +-- OutOfMemoryError (MemoryError)      KV_ENOMEM (also "server busy")
     +-- NotSupportedError                   KV_ENOTSUP
     +-- BusyError                           KV_EBUSY: store locked, port in use
     +-- PermissionDeniedError               KV_EPERM

get() never raises NotFoundError: it returns None.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

from . import _native as n


class Error(Exception):
    """A libkv call failed. ``code`` is the C status code (a negative int),
    ``detail`` the library's message for this failure (kv_error_last)."""

    code: int = 0

    def __init__(self, message: str, code: Optional[int] = None, detail: str = ""):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.detail = detail


class NotFoundError(Error, KeyError):
    """The key does not exist, was deleted, or has expired."""
    code = n.KV_ENOTFOUND

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return Exception.__str__(self)


class ConflictError(Error):
    """A compare-and-swap found another version than expected. ``version`` is
    the key's current version (0 when absent)."""
    code = n.KV_ECONFLICT
    version: int = 0


class InvalidArgumentError(Error, ValueError):
    """An argument was refused by the library (empty key, bad option...)."""
    code = n.KV_EINVAL


class TooBigError(Error, ValueError):
    """A key, value or batch is over its size limit."""
    code = n.KV_ETOOBIG


class RetryableError(Error):
    """Nothing was changed; the same call may be retried as it is."""


class UnavailableError(RetryableError):
    """Too few replicas could be reached; a write was NOT applied."""
    code = n.KV_EUNAVAILABLE


class TimedOutError(RetryableError):
    """The request did not complete in time; nothing was changed."""
    code = n.KV_ETIMEDOUT


class UnknownOutcomeError(Error):
    """A write timed out after it was sent: it may or may not have applied.
    Read the key before deciding to write again."""
    code = n.KV_EUNKNOWN_OUTCOME


class CorruptError(Error):
    """A stored record failed its checksum; it was not returned."""
    code = n.KV_ECORRUPT


class StorageError(Error):
    """The storage engine or the operating system reported an I/O error."""
    code = n.KV_EIO


class ClosedError(Error):
    """The handle is closed."""
    code = n.KV_ECLOSED


class OutOfMemoryError(Error, MemoryError):
    """Memory could not be allocated (or a node is too busy to buffer more)."""
    code = n.KV_ENOMEM


class NotSupportedError(Error):
    """This kind of handle does not support the call."""
    code = n.KV_ENOTSUP


class BusyError(Error):
    """The store is open in another process, or a port is in use."""
    code = n.KV_EBUSY


class PermissionDeniedError(Error):
    """Not authenticated: a token or certificate is missing or refused."""
    code = n.KV_EPERM


_BY_CODE: Dict[int, Type[Error]] = {
    cls.code: cls for cls in (
        NotFoundError, ConflictError, InvalidArgumentError, TooBigError,
        UnavailableError, TimedOutError, UnknownOutcomeError, CorruptError,
        StorageError, ClosedError, OutOfMemoryError, NotSupportedError,
        BusyError, PermissionDeniedError)
}


def strerror(code: int) -> str:
    """The library's short description of a status code."""
    return n.lib.kv_strerror(code).decode()


def from_code(code: int, what: str) -> Error:
    """The exception for status ``code`` returned by the call named ``what``,
    with this thread's detail message. Call right after the failing call."""
    detail = n.lib.kv_error_last().decode("utf-8", "replace")
    cls = _BY_CODE.get(code, Error)
    text = f"{what}: {strerror(code)}"
    if detail:
        text += f" ({detail})"
    return cls(text, code, detail)
