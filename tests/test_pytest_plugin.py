"""The pytest plugin: ``pytest --utnet-gate`` adds one test item per gate check."""

from __future__ import annotations

import pytest
import torch

# imported here, before pytester's in-process runs: it restores sys.modules after each run,
# and extension modules first imported inside one cannot be imported a second time
import utnet_diag.diagnostics.gate  # noqa: F401
import utnet_diag.synthetic.sample  # noqa: F401

pytestmark = pytest.mark.slow


def test_one_item_per_check_and_warnings_pass_with_a_warning(pytester) -> None:
    pytester.makepyfile(test_own="def test_own():\n    pass\n")
    result = pytester.runpytest("--utnet-gate", "-rA", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=38 - 1, skipped=1, warnings=2)
    result.stdout.fnmatch_lines(["*GateWarning: loss_weights:*", "PASSED ::gate::loss::loss_2d"])
    strict = pytester.runpytest("--utnet-gate", "--utnet-gate-fail-on=warn", "-q")
    strict.assert_outcomes(passed=35, failed=2, skipped=1)
    strict.stdout.fnmatch_lines(["*loss_weights: w_2d=0.01 is 100x below*", "hint: spec 9.1*"])


def test_a_failing_check_fails_its_item_with_message_and_hint(pytester, tmp_path) -> None:
    from utnet_diag.synthetic.sample import default_batch

    batch = {k: v for k, v in default_batch().tensors.items() if k != "keypoints_3d"}
    torch.save(batch, tmp_path / "no3d.pt")
    result = pytester.runpytest(f"--utnet-gate=--batch {tmp_path / 'no3d.pt'}", "-q")
    result.assert_outcomes(failed=1, passed=26, skipped=10, warnings=2)
    result.stdout.fnmatch_lines(["*loss_3d_joint: no 3D joint term: the batch has no*"])
    # the project's [tool.utnet-diag] applies, as on the command line
    pytester.makepyprojecttoml('[tool.utnet-diag]\nignore = ["loss_3d_joint"]\n')
    result = pytester.runpytest(f"--utnet-gate=--batch {tmp_path / 'no3d.pt'}", "-q")
    result.assert_outcomes(passed=26, skipped=11, warnings=2)


def test_the_fixture_gives_the_report_and_bad_gate_options_are_usage_errors(pytester) -> None:
    pytester.makepyfile(
        test_fixture="def test_report(utnet_gate):\n"
        "    assert utnet_gate.command == 'gate'\n"
        "    assert utnet_gate.check('grad_reach').status.value == 'pass'\n"
    )
    pytester.runpytest("-q").assert_outcomes(passed=1)
    result = pytester.runpytest("--utnet-gate=--bach x.pt", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown gate option '--bach'; did you mean '--batch'?*"])
