"""``utnet-diag convert-mano`` and ``mano-info``: round trip, refusals, exit codes."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from utnet_diag.cli.app import main
from utnet_diag.mano import write_synthetic_mano
from utnet_diag.mano.convert import pickle_globals

from .official_pickles import official_structure_bytes


@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    path = folder / "MANO_RIGHT.pkl"
    path.write_bytes(official_structure_bytes()[0])
    return path


def test_convert_round_trip_loads_with_plain_smplx(official_file, tmp_path, capsys):
    import smplx
    import torch

    before = official_file.read_bytes()
    out = tmp_path / "MANO_RIGHT.pkl"
    assert main(["convert-mano", str(official_file), str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "pass" and report["mano"]["written"] is True
    roundtrip = next(c for c in report["checks"] if c["id"] == "mano_smplx_roundtrip")
    assert roundtrip["value"] <= 1e-3 and roundtrip["details"]["poses"] == 6
    assert official_file.read_bytes() == before
    written = out.read_bytes()
    names = pickle_globals(written)
    assert names and all(n.startswith("numpy") for n in names)
    assert b"chumpy" not in written and b"scipy" not in written
    # the user's own code: smplx unpickles it itself, no chumpy needed
    with contextlib.redirect_stdout(io.StringIO()):
        model = smplx.MANO(model_path=str(out), use_pca=False, flat_hand_mean=True)
    reference = write_synthetic_mano(tmp_path / "ref_MANO_RIGHT.pkl")
    with contextlib.redirect_stdout(io.StringIO()):
        expected = smplx.MANO(model_path=str(reference), use_pca=False, flat_hand_mean=True)
    pose = torch.randn(1, 45, generator=torch.Generator().manual_seed(0)) * 0.5
    got = model(hand_pose=pose, global_orient=torch.zeros(1, 3), betas=torch.ones(1, 10))
    want = expected(hand_pose=pose, global_orient=torch.zeros(1, 3), betas=torch.ones(1, 10))
    assert torch.allclose(got.vertices, want.vertices, atol=1e-7)
    converted = pickle.loads(written)
    assert converted["shapedirs"].shape == (778, 3, 10) and isinstance(converted["f"], np.ndarray)
    assert "hands_coeffs" in converted  # the same keys as the official file


def test_convert_into_a_folder_and_smplx_create(official_file, tmp_path, capsys):
    import smplx

    (tmp_path / "mano").mkdir()
    assert main(["convert-mano", str(official_file), str(tmp_path / "mano")]) == 0
    captured = capsys.readouterr()
    assert "smplx.create" in captured.err and "PASSED" in captured.out
    with contextlib.redirect_stdout(io.StringIO()):
        model = smplx.create(str(tmp_path), "mano", use_pca=False)
    assert model.v_template.shape == (778, 3)


def test_output_name_without_side_warns(official_file, tmp_path, capsys):
    out = tmp_path / "hand.pkl"
    assert main(["convert-mano", str(official_file), str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert next(c for c in report["checks"] if c["id"] == "mano_file_name")["status"] == "warn"
    assert out.exists()
    assert main(["convert-mano", str(official_file), str(tmp_path / "h2.pkl"),
                 "--fail-on", "warn", "--json"]) == 1  # fmt: skip


def _bad_inputs(tmp_path, official_file):
    evil = tmp_path / "evil_MANO_RIGHT.pkl"

    class Exploit:
        def __reduce__(self):
            import os

            return os.system, (f"touch {tmp_path / 'pwned'}",)

    evil.write_bytes(pickle.dumps(Exploit(), protocol=2))
    cut = tmp_path / "cut_MANO_RIGHT.pkl"
    cut.write_bytes(official_file.read_bytes()[:5000])
    incomplete = tmp_path / "incomplete_MANO_RIGHT.pkl"
    incomplete.write_bytes(pickle.dumps({"v_template": np.zeros((778, 3))}, protocol=4))
    return {
        "unsafe": ([str(evil)], "not allowed"),
        "truncated": ([str(cut)], "truncated"),
        "missing keys": ([str(incomplete)], "missing keys"),
        "absent": ([str(tmp_path / "absent.pkl")], "not found"),
        "same file": ([str(official_file), str(official_file)], "never modified"),
        "bad suffix": ([str(official_file), str(tmp_path / "out.txt")], ".pkl"),
        "folder is a file": (
            [str(official_file), str(_a_file(tmp_path) / "MANO_RIGHT.pkl")],
            "folder is a file",
        ),
        "bad side": ([str(official_file), "--side", "up"], "side"),
    }


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def test_output_folders_are_created_where_smplx_create_looks(official_file, tmp_path, capsys):
    """smplx.create(DIR, 'mano') reads DIR/mano/MANO_RIGHT.pkl: convert-mano makes DIR/mano."""
    import smplx

    target = tmp_path / "models" / "mano" / "MANO_RIGHT.pkl"
    assert main(["convert-mano", str(official_file), str(target)]) == 0
    assert target.is_file()
    assert "smplx.create(" in capsys.readouterr().err
    model = smplx.create(str(tmp_path / "models"), model_type="mano", use_pca=False)
    assert model.faces.shape == (1538, 3)


def test_bad_inputs_exit_2_with_one_line_and_no_output(official_file, tmp_path, capsys):
    out = tmp_path / "out_MANO_RIGHT.pkl"
    for label, (args, match) in _bad_inputs(tmp_path, official_file).items():
        argv = ["convert-mano", *args] if len(args) > 1 and "--side" not in args else None
        if argv is None:
            argv = ["convert-mano", args[0], str(out), *args[1:]]
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 2, label
        assert captured.out == "", label
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and match in lines[0] and "Traceback" not in captured.err, label
        assert not out.exists(), label
        assert not list(tmp_path.glob(".*.tmp")), label
    assert not (tmp_path / "pwned").exists()


def test_mano_info(official_file, capsys):
    assert main(["mano-info", str(official_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mano"]["converted_objects"]["shapedirs"] == "chumpy.reordering.Select"
    size = next(c for c in report["checks"] if c["id"] == "mano_rest_size")["value"]
    assert 85 < size < 95


def test_mano_info_flags_broken_invariants(tmp_path, capsys):
    from utnet_diag.mano import synthetic_mano_data

    data = synthetic_mano_data()
    data["weights"] = data["weights"] * 0.5
    data["v_template"] = data["v_template"] * 1000.0  # millimetres instead of metres
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    assert main(["mano-info", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    status = {c["id"]: c["status"] for c in report["checks"]}
    assert status == {"mano_invariants": "fail", "mano_rest_size": "warn"}
    message = next(c for c in report["checks"] if c["id"] == "mano_invariants")["message"]
    assert "sum to 0.5000" in message
