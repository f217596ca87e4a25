"""The exceptions likeness raises.

Every error of the library is a :class:`likeness.Error`; the subclasses also derive from the
built-in exception a Python programmer would expect (``ValueError``, ``LookupError``), so
``except ValueError`` keeps working. Wrong argument *types* (a ``float64`` array where
``float32`` is needed, a list where an array is needed) raise the built-in ``TypeError``.
"""


class Error(Exception):
    """Base class of every likeness error (I/O, corrupt data, internal errors, ...)."""


class LockedError(Error):
    """The database directory is open in another process (it holds the ``LOCK`` file)."""


class InvalidArgumentError(Error, ValueError):
    """An argument has the right type but a wrong value: a bad index spec, a NaN component,
    a duplicate id on insert, a collection that already exists, ..."""


class DimensionError(InvalidArgumentError):
    """A vector or array has the wrong shape for the field (the message names the expected
    dtype and shape)."""


class NotFoundError(Error, LookupError):
    """No such record id, collection or vector field."""


class FilterError(InvalidArgumentError):
    """A metadata filter could not be parsed (``"label=cat and width>=640"``, or the JSON form)."""


class ImageError(Error):
    """An image could not be read, decoded or embedded (the message names the file or item)."""


__all__ = [
    "Error",
    "LockedError",
    "InvalidArgumentError",
    "DimensionError",
    "NotFoundError",
    "FilterError",
    "ImageError",
]
