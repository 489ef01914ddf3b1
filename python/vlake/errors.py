"""The exceptions vlake raises, one class per kind of failure.

Every class derives from :class:`VlakeError`; the invalid-input and not-found classes also
derive from the built-in ``ValueError`` and ``LookupError`` so generic handlers catch them.
"""


class VlakeError(Exception):
    """A vlake operation failed (storage errors and internal errors use this class itself)."""


class ConflictError(VlakeError):
    """A concurrent commit won and this one could not be rebased onto it; re-read and retry."""


class NotFoundError(VlakeError, LookupError):
    """A table, version, tag, column or file does not exist."""


class AlreadyExistsError(VlakeError):
    """Something that must be new already exists (a table, a tag)."""


class InvalidInputError(VlakeError, ValueError):
    """The caller passed something invalid: a schema mismatch, a bad filter, a wrong dimension."""


class CorruptDataError(VlakeError):
    """Bytes read from storage are not what the format says they must be."""


class UnsupportedError(VlakeError):
    """The table needs a feature or format version this build of vlake does not support."""


__all__ = [
    "VlakeError",
    "ConflictError",
    "NotFoundError",
    "AlreadyExistsError",
    "InvalidInputError",
    "CorruptDataError",
    "UnsupportedError",
]
