"""Running the user's own code (a checkout's UTNet, a model factory): what it prints goes to
stderr, and what it raises becomes an input error that keeps the user's traceback.

The report is the only thing on stdout, so ``--json`` stays one JSON document whatever the
user's model, smplx or tqdm print while being built and run. The user's exception is chained
(``__cause__``), so ``UTNET_DIAG_DEBUG=1`` shows the frames inside their code.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from utnet_diag.errors import InputError

DEBUG_HINT = "set UTNET_DIAG_DEBUG=1 for the traceback"


class UserCodeError(InputError):
    """The user's code raised (exit 2): their message, their traceback kept as ``__cause__``."""


class RefusedInput(BaseException):
    """Carries an InputError out of the user's code past their ``except Exception`` handlers
    (a refusal the tool makes while their code runs must not be swallowed by it)."""

    def __init__(self, error: InputError):
        super().__init__(str(error))
        self.error = error


@contextlib.contextmanager
def output_to_stderr() -> Iterator[None]:
    """``print`` and ``sys.stdout`` writes go to stderr for the duration."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def user_code_error(what: str, err: BaseException, hint: str | None = None) -> UserCodeError:
    """An input error for ``err`` raised by the user's code during ``what``; raise it ``from err``."""
    text = " ".join(str(err).split())[:300]
    return UserCodeError(f"{what} failed: {type(err).__name__}: {text}", hint=hint or DEBUG_HINT)


@contextlib.contextmanager
def running_user_code(
    what: str, hint: str | Callable[[BaseException], str | None] | None = None
) -> Iterator[None]:
    """Run the user's code: stdout to stderr; exceptions become UserCodeError (input errors and
    refusals made while it ran keep their own message). ``hint``: text, or a function of the
    exception that returns it."""
    try:
        with output_to_stderr():
            yield
    except RefusedInput as refused:
        raise refused.error from None
    except InputError as err:  # raised by utnet_diag code the user's code called
        raise UserCodeError(f"{what} failed: {err}") from err
    except Exception as err:  # noqa: BLE001 - anything the user's code raises
        from utnet_diag.device import is_out_of_memory  # torch: only once user code has failed

        if is_out_of_memory(err):  # the caller turns it into the batch-size advice
            raise
        text = hint(err) if callable(hint) else hint
        raise user_code_error(what, err, text) from err


@contextlib.contextmanager
def importable_from_cwd() -> Iterator[None]:
    """The current directory on ``sys.path`` for the duration (where a user runs from their
    checkout), removed again if it was not there."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)


def resolve_callable(
    spec: str,
    option: str,
    not_found_hint: str,
    stdout: TextIO | None = None,
    wrap: Callable[[str, BaseException], UserCodeError] = user_code_error,
) -> Callable[..., Any]:
    """``module:callable`` (``module:Class.method`` too) -> the callable, the module imported
    from ``sys.path`` or the current directory. ``option`` (``--loader``) names it in messages;
    what the import prints goes to ``stdout`` (default stderr); ``wrap(what, err)`` turns an
    exception the import raises into the error to raise."""
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise InputError(f"{option} '{spec}' must look like module:callable")
    module_name, attr = spec.split(":")
    try:
        with contextlib.redirect_stdout(stdout or sys.stderr), importable_from_cwd():
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise InputError(
                f"{option}: module '{module_name}' not found", hint=not_found_hint
            ) from None
        raise wrap(f"importing {module_name}", err) from err
    except Exception as err:  # noqa: BLE001 - the user's code
        raise wrap(f"importing {module_name}", err) from err
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise InputError(f"{option}: '{module_name}' has no attribute '{attr}'")
    if not callable(target):
        raise InputError(f"{option}: '{spec}' is not callable")
    return target
