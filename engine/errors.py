"""Errors the engine raises for bad input. Each names what was wrong and where."""

from __future__ import annotations


class TonematchError(Exception):
    """Base class: a problem the user can fix, reported as one clear line."""

    code = "INVALID_INPUT"

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class AudioInputError(TonematchError):
    """An input audio file is missing, unreadable, unsupported or unusable (``where`` = the path)."""


class ParamsError(TonematchError):
    """A style_params / preset / option value is malformed or out of range (``where`` = field path,
    for example ``eq[3].gain_db``)."""
