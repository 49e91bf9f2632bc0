"""Errors a user can act on: each names the file, field or id at fault and the reason.

Every error a caller can cause is a `ViscoverError`, so a CLI prints it and a server answers it with a 4xx;
anything else is a bug and stays a traceback (a 5xx).
"""


class ViscoverError(Exception):
    """Base class for every error viscover reports to a user instead of a traceback."""


class BadImageError(ViscoverError):
    """An image that cannot be used: missing, corrupt, truncated, too large or not an image."""


class BadCropError(ViscoverError):
    """A box that is not a positive-area region inside the image."""

    field = "crop"  # the request field an API answer names


class BadManifestError(ViscoverError):
    """A manifest file or row that cannot be read."""


class BadArgumentError(ViscoverError):
    """An argument out of its allowed range or form: k, a code length, a name with a path in it."""


class BadSettingError(ViscoverError):
    """A setting (VISCOVER_* variable or option) with a value it cannot take."""


class UnknownPinError(ViscoverError):
    """A pin id that is not in the catalog."""


class PinConflictError(ViscoverError):
    """A pin id that already names a different image."""

    field = "pin_id"


class StoredImageError(ViscoverError):
    """A catalog pin's image that can no longer be read where the catalog says it is (moved, deleted)."""


class UnknownNameError(ViscoverError):
    """A backbone, layer, binarizer, detector or index name that is not registered."""


class NotIndexedError(ViscoverError):
    """A search asked of a catalog whose index has not been built yet."""


class DamagedLandingError(NotIndexedError):
    """Codes landed for a shard build that cannot be read, or differ from what landed: they land again."""


class NotEnoughDataError(ViscoverError):
    """Too few vectors or images to learn from (a binarizer, a split)."""


class WeightsUnavailableError(ViscoverError):
    """Pretrained weights that are neither on disk nor downloadable here."""


class WriteLockTimeoutError(ViscoverError):
    """Another process kept the home's write lock longer than the write-lock timeout."""


class ShardUnavailableError(ViscoverError):
    """A shard server of a cluster did not answer: results without its shard would be silently short."""


class AccessDeniedError(ViscoverError):
    """A request without the API key the server was started with."""


class ExpiredCursorError(ViscoverError):
    """A page cursor whose query the server no longer holds (restarted, or too many queries since)."""
