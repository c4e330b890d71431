"""Errors a user can cause. The CLI prints their one-sentence message and exits with status 2."""


class LandscapeError(Exception):
    """Base class: the message says what is wrong and what to do about it."""


class SpecError(LandscapeError):
    """A bad architecture, activation or numeric setting."""


class DataError(LandscapeError):
    """A data file that is missing, malformed or holds non-finite values."""


class StoreError(LandscapeError):
    """A chain file that is missing, corrupt, foreign, or would be overwritten."""


class ResumeMismatch(LandscapeError):
    """A resume whose settings differ from those stored with the run."""
