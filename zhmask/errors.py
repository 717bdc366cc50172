"""Errors a user can cause. The CLI turns them into one line and exit code 2."""


class ZhmaskError(Exception):
    """A problem with the user's input or options, reported without a traceback."""

    exit_code = 2


class BadInputFile(ZhmaskError):
    """An input file cannot be read or decoded (named in the message)."""


class BuildFailed(ZhmaskError):
    """A document or a worker process crashed the build (named in the message); exit code 1."""

    exit_code = 1
