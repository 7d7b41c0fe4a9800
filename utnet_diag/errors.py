"""Exceptions the user can cause. The CLI maps them to exit code 2 and one line on stderr."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InputError(Exception):
    """A bad input: a file, an option or a value the user gave. Exit code 2.

    The message is one line written for the user: what is wrong and what to do.
    ``path`` names the offending file when there is one.
    """

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        self.path = str(path) if path is not None else None
        self.hint = hint
        # what is wrong and what to do, without the path: for reports that name the file apart
        self.detail = f"{message} ({hint})" if hint else message
        text = message
        if self.path and self.path not in message:
            text = f"{self.path}: {message}"
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)


class UnsafeInputError(InputError):
    """A file that asks to run code (a pickle global or YAML tag outside the allow-list)."""


class ResourceError(InputError):
    """An input that would exhaust the machine (too large a batch, unbounded output)."""


def nearest(name: str, choices: Iterable[str]) -> str | None:
    """The closest valid name to a mistyped one, or None."""
    found = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return found[0] if found else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest valid name to a mistyped one, else ``""``."""
    guess = nearest(name, choices)
    return f"; did you mean '{guess}'?" if guess else ""
