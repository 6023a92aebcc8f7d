"""Errors raised by models/. Each names the argument, the value it got and the fix."""


class ForecastInputError(ValueError):
    """Bad input to fit or predict: wrong shape, too short, non-finite, bad covariates."""


class ConfigError(ValueError):
    """A model config value is out of range, unknown, or inconsistent with another."""


class ModelFileError(ValueError):
    """A saved model directory is missing a file, malformed, or of an unknown family."""
