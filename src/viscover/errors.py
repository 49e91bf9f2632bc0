"""Errors a user can act on: each names the file, field or id at fault and the reason."""


class ViscoverError(Exception):
    """Base class for every error viscover reports to a user instead of a traceback."""


class BadImageError(ViscoverError):
    """An image that cannot be used: missing, corrupt, truncated, too large or not an image."""


class BadCropError(ViscoverError):
    """A crop box that is not a positive-area region inside the image."""


class BadManifestError(ViscoverError):
    """A manifest file or row that cannot be read."""


class UnknownPinError(ViscoverError):
    """A pin id that is not in the catalog."""


class UnknownNameError(ViscoverError):
    """A backbone, layer, binarizer or index name that is not registered."""


class NotIndexedError(ViscoverError):
    """A search asked of a catalog whose index has not been built yet."""


class WeightsUnavailableError(ViscoverError):
    """Pretrained weights that are neither on disk nor downloadable here."""
