"""User-facing error type.

Errors raised with :class:`WavediffError` describe a problem with the user's input
(a missing file, an unknown preset, a mel of the wrong shape). The command line prints
them as one line without a traceback; the library lets them propagate.
"""
from __future__ import annotations


class WavediffError(ValueError):
    """A problem with user input, stated in one line that names the bad value."""
