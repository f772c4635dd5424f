"""Errors a user can act on. The CLI prints them without a traceback and exits 2."""


class ToolkitError(Exception):
    """A problem with the user's input, data or environment, explained in the message.

    The CLI prints it on one line and exits with ``exit_status``."""

    exit_status = 2


class TrainingDiverged(ToolkitError):
    """Training (or ``[pretrain]``) stopped because the loss diverged; the CLI exits with
    status 3."""

    exit_status = 3


class ConfigError(ToolkitError):
    """An invalid configuration value; the message starts with the key path."""

    def __init__(self, path: str, message: str, config_file: str | None = None):
        self.path = path
        self.message = message
        self.config_file = config_file
        where = f"{config_file}: " if config_file else ""
        super().__init__(f"{where}{path}: {message}" if path else f"{where}{message}")


def did_you_mean(given: str, known) -> str:
    """`` Did you mean 'units'?`` when one of ``known`` is close to ``given``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(str(given), [str(k) for k in known], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""
