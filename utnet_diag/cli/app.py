"""The typer app, the exception-to-exit-code table, and report output shared by all commands."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import sys
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional, TextIO

import typer

import utnet_diag
from utnet_diag.cli.commands import GROUP_OF, GROUPS
from utnet_diag.cli.renderers import section_renderers
from utnet_diag.errors import InputError, did_you_mean
from utnet_diag.io.files import check_output_path
from utnet_diag.report.junit import write_junit
from utnet_diag.report.markdown import append_step_summary
from utnet_diag.selection import (
    Selection,
    apply,
    find_pyproject,
    from_config,
    from_pyproject,
    parse_names,
)


class GroupedCommands(typer.core.TyperGroup):
    """`--help` lists the commands under their groups (``commands.GROUPS``), in table order."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows: dict[str, list[tuple[str, str]]] = {group: [] for group in GROUPS}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            limit = formatter.width - 6 - max(len(n) for n in self.commands)
            rows.setdefault(GROUP_OF.get(name, "Other"), []).append(
                (name, command.get_short_help_str(limit))
            )
        for group, entries in rows.items():
            if entries:
                with formatter.section(f"{group} commands"):
                    formatter.write_dl(entries)


app = typer.Typer(
    name="utnet-diag",
    cls=GroupedCommands,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Loss debugging and diagnostics for UTNet (3D hand pose and mesh).\n\n"
    "Exit codes: 0 no failure; 1 a check failed; 2 usage or input error; 3 internal error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


# The stream the report goes to: stdout as it was when the command started. While a command
# runs, sys.stdout is stderr, so whatever the user's code or a library prints never mixes with
# the report (--json stays one JSON document).
_REPORT_STREAM: ContextVar[TextIO | None] = ContextVar("report_stream", default=None)


def report_stream() -> TextIO:
    """Where the report (and only the report) is written."""
    return _REPORT_STREAM.get() or sys.stdout


def stdout_reserved_for_the_report(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``command`` with sys.stdout sent to stderr; :func:`report_stream` is the real stdout."""
    if getattr(command, "_reserves_stdout", False):
        return command

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = _REPORT_STREAM.set(sys.stdout)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return command(*args, **kwargs)
        finally:
            _REPORT_STREAM.reset(token)

    run._reserves_stdout = True  # type: ignore[attr-defined]
    return run


def debug_enabled() -> bool:
    return os.environ.get("UTNET_DIAG_DEBUG", "") not in ("", "0", "false", "False")


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def say(message: str, style: str | None = None) -> None:
    """A progress line or hint on stderr (never stdout); control characters escaped."""
    stderr_console().print(printable(message), style=style, markup=False)


def say_pictures(report: Any) -> None:
    """One stderr line per picture the command wrote (the report's ``pictures`` section)."""
    section = report.sections.get("pictures")
    for record in (section.get("files") if section is not None else None) or []:
        shown = record.get("samples")
        what = f" (samples {', '.join(map(str, shown))})" if shown else ""
        say(f"wrote {record['kind']} {record['path']}{what}")


@dataclass(frozen=True)
class OutputChoices:
    """What every report command takes besides its own options: ``quiet`` (the verdict and the
    failing and warning checks only), the check selection, and whether --fail-on was given."""

    quiet: bool = False
    selection: Selection = Selection()
    fail_on_given: bool = False


_OUTPUT: ContextVar[OutputChoices | None] = ContextVar("output_choices", default=None)

QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Print only the verdict and the failing/warning checks."),
]
SelectOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--select",
        metavar="IDS",
        help="Only these check ids or families decide the verdict (comma-separated or repeated;"
        " default: [tool.utnet-diag] select in pyproject.toml, else all).",
    ),
]
IgnoreOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--ignore",
        metavar="IDS",
        help="These check ids or families never decide the verdict; they are shown as skipped"
        " with what they found.",
    ),
]


def _option_given(name: str) -> bool:
    """True when the option ``name`` came from the command line (not its default)."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - typer that uses click itself
        from click.globals import get_current_context  # type: ignore[no-redef]
    ctx = get_current_context(silent=True)
    if ctx is None:
        return True
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


# Options that name a file the command writes (a folder output, like convert-mano's, is not one).
OUTPUT_OPTIONS = {
    "junit": "--junit",
    "out": "--out",
    "plot": "--plot",
    "per_sample": "--per-sample",
}


def check_output_paths(options: dict[str, Any]) -> None:
    """Before any work: each output file is not a folder, not an input of this run (nor another
    output), and its folder exists and is writable. InputError otherwise."""
    outputs = {n: Path(v) for n, v in options.items() if n in OUTPUT_OPTIONS and v is not None}
    inputs = [Path(v) for n, v in options.items()
              if n not in OUTPUT_OPTIONS and isinstance(v, (str, Path)) and Path(v).exists()]  # fmt: skip
    seen: dict[Path, str] = {}
    for name, path in outputs.items():
        flag = OUTPUT_OPTIONS[name]
        check_output_path(path, flag, tuple(inputs))
        key = path.resolve()
        if key in seen:
            raise InputError(f"{flag} and {seen[key]} name the same file", path=str(path))
        seen[key] = flag


def with_output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a report command ``--quiet``, ``--select`` and ``--ignore`` (read by :func:`emit`),
    with ``[tool.utnet-diag]`` of the nearest pyproject.toml under the command line."""
    if getattr(command, "_output_options", False):
        return command
    params = list(inspect.signature(command, eval_str=True).parameters.values())
    if "json_out" not in {p.name for p in params}:
        return command
    extra = [
        inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=QuietOpt),
        inspect.Parameter("select", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=SelectOpt),
        inspect.Parameter("ignore", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=IgnoreOpt),
    ]  # fmt: skip

    @functools.wraps(command)
    def wrapper(*args: Any, quiet: bool = False, select: Any = None, ignore: Any = None, **kw: Any):
        check_output_paths(kw)
        given = Selection(
            parse_names(select or (), "--select"), parse_names(ignore or (), "--ignore")
        )
        config = kw.get("config") if isinstance(kw.get("config"), (str, Path)) else None
        files = from_config(config).merged_over(from_pyproject(find_pyproject()))
        selection = given.merged_over(files)
        token = _OUTPUT.set(OutputChoices(quiet, selection, _option_given("fail_on")))
        try:
            return command(*args, **kw)
        finally:
            _OUTPUT.reset(token)

    kinds = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
    wrapper.__signature__ = inspect.Signature(kinds + extra)  # type: ignore[attr-defined]
    wrapper._output_options = True  # type: ignore[attr-defined]
    return wrapper


def emit(report, json_out: bool, junit: Path | None, fail_on: str) -> int:
    """Apply the check selection, print the report (rich or JSON) on stdout, write JUnit if
    asked, append a Markdown summary where GitHub Actions reads one; return the exit code."""
    choices = _OUTPUT.get() or OutputChoices()
    report = apply(report, choices.selection)
    if choices.selection.fail_on is not None and not choices.fail_on_given:
        fail_on = choices.selection.fail_on
    problem = append_step_summary(report, fail_on)
    if problem:
        say(f"utnet-diag: warning: {problem}", style="yellow")
    if junit is not None:
        write_junit(report, junit, fail_on)
    out = report_stream()
    if json_out:
        out.write(report.to_json() + "\n")
        out.flush()
    else:
        from rich.console import Console

        # deferred: rich loads only when a report is drawn for people
        from utnet_diag.report.render import render_report

        console = Console(file=out, highlight=False)
        render_report(report, console, fail_on, section_renderers(), quiet=choices.quiet)
    return report.exit_code(fail_on)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters (terminal escapes in a file name) written as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _one_line(text: str) -> str:
    return printable(" ".join(str(text).split()))


_NOT_ONE_OF = re.compile(r"(?:Value error, )?'(?P<value>[^']*)' is not one of (?P<choices>.+?)\.?$")


def _with_suggestion(message: str) -> str:
    """A bad choice's message with the nearest valid choice (``--preset recomended``)."""
    found = _NOT_ONE_OF.search(message)
    if found is None:
        return message
    choices = re.findall(r"'([^']*)'", found["choices"])
    head = message[: found.start()].rstrip()
    return f"{head} '{found['value']}' is not one of {', '.join(choices)}" + did_you_mean(
        found["value"], choices
    )


def _never_fail_to_print() -> None:
    """Under an ASCII (or other non-UTF) locale, characters the stream cannot encode (bars,
    arrows, box lines) are replaced instead of raising UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):  # a closed or detached stream
                stream.reconfigure(errors="replace")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map exceptions to exit codes (2 input, 3 internal)."""
    _never_fail_to_print()
    try:  # typer >= 0.22 vendors click
        from typer._click.exceptions import ClickException, NoArgsIsHelpError
    except ImportError:  # pragma: no cover
        from click.exceptions import ClickException, NoArgsIsHelpError  # type: ignore[no-redef]

    # Register the commands (each module only imports torch inside its command functions).
    from utnet_diag.cli.commands import register

    register(app)
    for info in app.registered_commands:
        info.callback = stdout_reserved_for_the_report(with_output_options(info.callback))
    try:
        result = app(args=argv, prog_name="utnet-diag", standalone_mode=False)
        return int(result or 0)
    except InputError as err:
        _traceback_if_debug(err)
        print(f"utnet-diag: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_INPUT
    except typer.Exit as err:
        return int(getattr(err, "exit_code", 0) or 0)
    except NoArgsIsHelpError as err:
        print(err.format_message() if hasattr(err, "format_message") else str(err), file=sys.stderr)
        return EXIT_INPUT
    except ClickException as err:
        _traceback_if_debug(err)
        ctx = getattr(err, "ctx", None)
        usage = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = _with_suggestion(_one_line(err.format_message()))
        print(f"utnet-diag: error: {message}{usage}", file=sys.stderr)
        return EXIT_INPUT
    except (typer.Abort, KeyboardInterrupt):
        print("utnet-diag: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as err:
        if getattr(err, "filename", None) is None:
            return _internal_error(err)
        # the system refused a file the user named (input or output): too long a name, a
        # read-only or full disk, a folder where a file was expected, no permission
        _traceback_if_debug(err)
        print(f"utnet-diag: error: {printable(str(err.filename))}: {err.strerror or err}",
              file=sys.stderr)  # fmt: skip
        return EXIT_INPUT
    except Exception as err:  # the tool itself broke
        return _internal_error(err)


def _internal_error(err: BaseException) -> int:
    """Exit 3: the tool itself broke; one line, the traceback with UTNET_DIAG_DEBUG."""
    _traceback_if_debug(err)
    print(
        f"utnet-diag: internal error: {type(err).__name__}: {_one_line(err)[:300]}"
        " (set UTNET_DIAG_DEBUG=1 for the traceback and report it)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _traceback_if_debug(err: BaseException) -> None:
    """With UTNET_DIAG_DEBUG set, the whole chained traceback (frames in the user's code
    included) on stderr; the exit code stays what it would be without it."""
    if debug_enabled():
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


def _print_version(value: bool) -> None:
    if value:
        print(f"utnet-diag {utnet_diag.__version__}")
        raise typer.Exit(0)


VersionOpt = Annotated[
    bool,
    typer.Option(
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit (`utnet-diag version` also lists the libraries).",
    ),
]


@app.callback()
def _root(version: VersionOpt = False) -> None:
    """Loss debugging and diagnostics for UTNet (3D hand pose and mesh).

    Exit codes: 0 no failure; 1 a check failed (--fail-on warn: warnings too); 2 usage or input
    error; 3 internal error. Set UTNET_DIAG_DEBUG=1 to see tracebacks.
    """
