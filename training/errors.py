"""User-facing errors of training/. Each message names the file/field, the value and the fix.

The CLI turns any `ValueError` subclass listed in `USER_ERRORS` into one line on stderr and
exit code 2; anything else is a bug and keeps its traceback.
"""

from models.errors import ConfigError, ForecastInputError, ModelFileError


class DataError(ValueError):
    """A dataset, file or column cannot be turned into a valid long table."""


class ExperimentError(ValueError):
    """An experiment file or CLI flag combination is invalid."""


class TrackingError(ValueError):
    """The MLflow tracking server or registry cannot be used as asked."""


USER_ERRORS: tuple[type[ValueError], ...] = (
    DataError,
    ExperimentError,
    TrackingError,
    ConfigError,
    ForecastInputError,
    ModelFileError,
)
