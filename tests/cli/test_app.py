"""The CLI frame: exit codes 0/1/2/3, one line per error, tracebacks only with UTNET_DIAG_DEBUG."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from utnet_diag.cli.app import app, main


@pytest.fixture
def broken_command():
    """A command that breaks the way a bug in the tool would (registered for one test)."""

    @app.command("explode-for-test", hidden=True)
    def explode(kind: str = "bug") -> None:
        if kind == "interrupt":
            raise KeyboardInterrupt
        if kind == "exit1":
            raise typer.Exit(1)
        raise ZeroDivisionError("planted internal error")

    yield
    app.registered_commands[:] = [
        c for c in app.registered_commands if c.name != "explode-for-test"
    ]


def test_internal_error_is_exit_3_with_one_line(broken_command, capsys, monkeypatch):
    monkeypatch.delenv("UTNET_DIAG_DEBUG", raising=False)
    assert main(["explode-for-test"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError" in err
    assert "UTNET_DIAG_DEBUG=1" in err and "Traceback" not in err


def test_debug_env_prints_the_traceback_and_keeps_the_exit_code(
    broken_command, capsys, monkeypatch
):
    monkeypatch.setenv("UTNET_DIAG_DEBUG", "1")
    assert main(["explode-for-test"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "ZeroDivisionError" in err
    assert err.rstrip().splitlines()[-1].startswith("utnet-diag: internal error")


def test_interrupt_and_exit_codes_pass_through(broken_command, capsys):
    assert main(["explode-for-test", "--kind", "interrupt"]) == 130
    assert main(["explode-for-test", "--kind", "exit1"]) == 1
    capsys.readouterr()


def test_usage_errors_are_exit_2(capsys):
    assert main(["no-such-command"]) == 2
    assert main(["check-batch", "--fail-on", "sometimes", "x.pt"]) == 2
    err = capsys.readouterr().err
    assert "No such command" in err and "--help" in err


def test_help_is_exit_0(capsys):
    assert main(["--help"]) == 0
    assert "check-batch" in capsys.readouterr().out


def test_help_does_not_import_torch():
    code = (
        "import sys; from utnet_diag.cli.app import main; "
        "rc = main(['gate', '--help']); "
        "print('torch' in sys.modules, rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False 0"


def test_stdout_is_not_used_for_errors(capsys, tmp_path):
    assert main(["check-batch", str(tmp_path / "missing.pt")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "missing.pt" in captured.err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["gate", "--preset", "recomended"],
            "Invalid value for '--preset': 'recomended' is not"
            " one of config, code, recommended; did you mean 'recommended'?",
        ),
        (
            ["scan", "--dataset", "ho3", "--root", "."],
            "Invalid value for '--dataset': 'ho3' is not one of ho3d, dexycb; did you mean 'ho3d'?",
        ),
        (
            ["gate", "--fail-on", "xyz"],
            "Invalid value for '--fail-on': 'xyz' is not one of fail, warn (see",
        ),
    ],
)
def test_a_bad_choice_names_the_choices_and_the_nearest_one(argv, line, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("utnet-diag: error: ") and line in err[0], err


def test_help_lists_every_command_once_under_its_group(capsys):
    from utnet_diag.cli.commands import COMMANDS, GROUPS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    headings = [line[:-1] for line in out.splitlines() if line.endswith(" commands:")]
    assert headings == [f"{group} commands" for group in GROUPS]
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and
              not line.lstrip().startswith("-") and line.split()[0] in {c[0] for c in COMMANDS}]  # fmt: skip
    assert sorted(listed) == sorted(c[0] for c in COMMANDS) and len(set(listed)) == len(listed)
    section = out[out.index("Model commands:") : out.index("Training commands:")]
    assert [line.split()[0] for line in section.splitlines()[1:] if line.strip()] == [
        "gate", "loss-breakdown", "grad-flow", "compare"
    ]  # fmt: skip
