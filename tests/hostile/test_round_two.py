"""Round two of the hostile inputs: each case in its own capped process (see round_two.py)."""

from __future__ import annotations

import pytest

from tests.hostile.corpus_two import build
from tests.hostile.round_two import digest, run


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("round_two")
    return root, {case.name: case for case in build(root)}


CASE_NAMES = [
    "mano_ndarray_claim", "mano_dtype_claim", "mano_sparse_extra", "mano_select_two_unknown",
    "mano_ch_empty_state", "mano_deep_list", "mano_nan_faces", "mano_complex",
    "npz_header_claim", "npz_zip_bomb", "ckpt_config_size", "ckpt_config_memory",
    "ho3d_meta_fifo", "ho3d_depth_fifo", "ho3d_meta_fifo_no_images", "ho3d_depth_12000px",
    "ho3d_split_30mb_line", "dexycb_meta_python_tag",
    "junit_is_the_input", "junit_is_a_directory", "scan_out_is_a_directory", "junit_is_the_config",
    "yaml_5000_digits", "yaml_4000_digits", "yaml_20000_deep", "batch_meta_device",
    "name_300_chars", "name_with_escape_codes", "all_zero_gt", "ascii_locale_gate",
    "ascii_locale_parse_log", "check_batch_1000_random",
]  # fmt: skip


def test_the_list_of_names_is_the_corpus(cases):
    assert sorted(cases[1]) == sorted(CASE_NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_input(name, cases):
    root, by_name = cases
    case = by_name[name]
    before = digest(case.input_path)
    result = run(case, root)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if case.expect == "input":
        assert result.returncode == 2, f"exit {result.returncode}: {result.stderr[-600:]}"
        assert len(lines) == 1, result.stderr
        needle = case.names or case.input_path.name
        assert needle in lines[0], lines[0]
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
    else:
        assert result.returncode in (0, 1), f"exit {result.returncode}: {result.stderr[-600:]}"
        assert "Traceback" not in result.stderr
    assert digest(case.input_path) == before
    for output in case.outputs:
        assert not output.exists(), f"output {output} left behind"
        assert not list(output.parent.glob(f".{output.name}*")), "temporary files left behind"
    if case.check is not None:
        case.check(result)
