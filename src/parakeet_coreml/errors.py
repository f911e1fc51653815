"""User-facing errors: each carries one line that names the file and the problem.

The CLI prints ``str(error)`` on one line and exits non-zero; anything that is not a
``ParakeetError`` is a bug and keeps its traceback.
"""

from __future__ import annotations


class ParakeetError(Exception):
    """Base class for errors a user can act on."""


class CheckpointError(ParakeetError):
    """A .nemo file, folder or model id that cannot be used."""


class UnsupportedModelError(CheckpointError):
    """A readable checkpoint whose architecture this toolkit does not handle."""


class AudioError(ParakeetError):
    """Audio that is missing, unreadable, empty, too short or too long."""


class OutputError(ParakeetError):
    """An output location that cannot be written safely."""


class ConversionError(ParakeetError):
    """A component that failed to convert to CoreML."""
