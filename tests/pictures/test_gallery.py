"""scan --gallery: one sheet per check with findings, from the dataset's own frames, and a page
that links them with the findings; its bad paths."""

from __future__ import annotations

import os
import re

import pytest
from PIL import Image

from utnet_diag.cli.app import main
from utnet_diag.datasets.batch import open_reader
from utnet_diag.datasets.common import Finding
from utnet_diag.datasets.scan import scan_dataset
from utnet_diag.errors import InputError
from utnet_diag.pictures.gallery import check_gallery_dir, worst
from utnet_diag.synthetic.trees import write_ho3d_tree

pytestmark = pytest.mark.slow  # writes and scans a dataset tree

FAULTS = {"mm_joints": [1], "unflipped": [2, 7], "missing_meta": [3], "truncated_rgb": [5]}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("ho3d")
    write_ho3d_tree(root, frames_per_sequence=5, faults=FAULTS)
    return root


def test_each_check_with_findings_gets_a_sheet_and_the_page_links_them(tree, tmp_path):
    gallery = tmp_path / "gallery"
    report = scan_dataset(open_reader("ho3d", tree, None, None), images=True, gallery=gallery)
    record = report.sections["pictures"]["files"][0]
    assert record["kind"] == "gallery" and record["path"] == str(gallery / "index.html")
    assert set(record["sheets"]) == {"kp3d_units", "kp3d_in_front", "rgb_readable",
                                     "bone_lengths", "depth_agrees"}  # fmt: skip
    with Image.open(gallery / "kp3d_in_front.png") as sheet:
        assert sheet.size[1] > 2 * 224  # its two frames, one row each
    page = (gallery / "index.html").read_text()
    flagged = {c.id for c in report.checks if c.status.value in ("fail", "warn")}
    for check in report.checks:  # the findings table has every check
        assert f"<code>{check.id}</code>" in page
    for check_id in record["sheets"]:
        assert f'<img src="{check_id}.png"' in page and f'href="#{check_id}"' in page
    assert "meta_missing" in flagged and "meta_missing.png" not in os.listdir(gallery)
    assert "not drawn (no usable annotation): train/ABF10/0003" in page


def test_the_worst_frames_come_first_once_each():
    def f(index, severity, value):
        return Finding(index, f"s{index}", "p", "c", severity, "m", value)

    found = [f(0, "warn", 900.0), f(1, "fail", 2.0), f(2, "fail", 50.0), f(2, "fail", 1.0),
             f(3, "fail", None), f(4, "fail", float("nan"))]  # fmt: skip
    assert [x.index for x in worst(found)] == [4, 2, 1, 3, 0]
    assert len(worst([f(i, "fail", i) for i in range(40)])) == 16


def test_messages_are_escaped_in_the_page(tree, tmp_path):
    from utnet_diag.pictures.gallery import _page
    from utnet_diag.report.result import CheckResult, Status

    page = _page([CheckResult("x", Status.FAIL, "<script>alert(1)</script>")], {}, {})
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_bad_gallery_paths(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        check_gallery_dir(a_file)
    with pytest.raises(InputError, match="does not exist"):
        check_gallery_dir(tmp_path / "missing" / "gallery")
    assert check_gallery_dir(tmp_path / "new") == tmp_path / "new"  # made by the scan


def test_a_bad_gallery_exits_2_before_the_scan(tree, tmp_path, capsys):
    code = main(["scan", "--dataset", "ho3d", "--root", str(tree), "--gallery",
                 str(tmp_path / "missing" / "g")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--gallery" in err[0]
    assert not (tmp_path / "missing").exists()


def test_scan_cli_says_where_the_gallery_went(tree, tmp_path, capsys):
    gallery = tmp_path / "g"
    assert main(["scan", "--dataset", "ho3d", "--root", str(tree), "--gallery", str(gallery),
                 "-q"]) == 1  # fmt: skip
    err = " ".join(capsys.readouterr().err.split())
    assert f"wrote gallery {gallery / 'index.html'}" in err
    assert re.search(r"kp3d_units\.png", (gallery / "index.html").read_text())
