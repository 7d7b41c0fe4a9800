"""A UTNet checkout as its users have it (tests/fixtures/utnet_checkout reproduces the behaviours
of the public checkout that matter): built from the given config as train.py does, importable
while it runs, its prints kept off stdout, square loader crops, MANO through smplx.create with a
swallowed exception, the official chumpy pickle, and its joint mapping and projection."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch
import yaml

from utnet_diag.cli.app import main
from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.model.sources import load_model

from .conftest import switch


def _run(argv: list[str], capsys) -> tuple[int, dict, str]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def _checks(report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in report["checks"]}


def _repo_args(repo: Path, *more: str) -> list[str]:
    return ["--repo", str(repo), "--batch", str(repo.parent / "batch.pt"), *more]


def _convert_command(hint: str) -> list[str]:
    """The `utnet-diag convert-mano IN OUT` command a hint gives, as argv for main()."""
    found = re.search(r"`utnet-diag (convert-mano [^`]+)`", hint)
    assert found, hint
    return shlex.split(found.group(1))


# --- the build --------------------------------------------------------------------------------
def test_built_from_the_given_config_with_the_mano_section(utnet_checkout: Path, tmp_path: Path):
    config = yaml.safe_load((utnet_checkout / "config" / "config.yaml").read_text())
    config["model"]["embed_dim"] = 16  # a reduced model in a copied config, as users do on CPU
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(config))
    loaded = load_model(repo=utnet_checkout, config=small, device="cpu")
    assert loaded.model.embed.out_channels == 16
    args = {a.name: a for a in loaded.build.arguments}
    assert args["embed_dim"].origin == "small.yaml: model.embed_dim"
    assert args["mano_path"].value == str(utnet_checkout / "mano_data" / "MANO_RIGHT.pkl")
    assert args["mano_path"].origin == "small.yaml: mano.model_path, relative to the checkout"
    assert args["mean_params_path"].origin.startswith("small.yaml: mano.mean_params_path")
    assert loaded.build.config_path == small
    # without --config: the checkout's own config (embed_dim 32)
    assert load_model(repo=utnet_checkout, device="cpu").model.embed.out_channels == 32


@pytest.mark.slow
def test_mano_option_replaces_mano_model_path(utnet_checkout: Path, tmp_path: Path):
    from utnet_diag.mano import write_synthetic_mano

    (tmp_path / "elsewhere").mkdir()
    mano = write_synthetic_mano(tmp_path / "elsewhere" / "MANO_RIGHT.pkl")
    loaded = load_model(repo=utnet_checkout, mano_path=mano, device="cpu")
    args = {a.name: a for a in loaded.build.arguments}
    assert args["mano_path"].value == str(mano) and args["mano_path"].origin == "--mano"


def test_a_config_without_the_mano_section_names_the_key(utnet_checkout: Path):
    config = utnet_checkout / "config" / "config.yaml"
    data = yaml.safe_load(config.read_text())
    del data["mano"]
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=r"no value for UTNet argument\(s\) mano.model_path, "
                       r"mano.mean_params_path"):  # fmt: skip
        load_model(repo=utnet_checkout, device="cpu")


@pytest.mark.slow
def test_run_table_names_the_config_and_every_value(utnet_checkout: Path, capsys):
    code, report, _ = _run(["loss-breakdown", *_repo_args(utnet_checkout)], capsys)
    run = report["run"]
    assert run["built_from"] == str(utnet_checkout / "config" / "config.yaml")
    assert run["arguments"]["vit_depth"] == "1 (config.yaml: model.vit_depth)"
    assert "pretrained_weights" in " ".join(run["notes"])  # not loaded, and why


# --- running the checkout ---------------------------------------------------------------------
@pytest.mark.slow
def test_the_checkout_stays_importable_for_forward_and_backward(utnet_checkout: Path, capsys):
    """forward imports `src.utils.geometry` lazily; grad-flow and overfit run it many times."""
    for command in (["grad-flow"], ["overfit", "--steps", "3"]):
        code, report, err = _run([*command, *_repo_args(utnet_checkout)], capsys)
        assert code in (0, 1), err
        assert "No module named 'src'" not in err
    assert "src" not in sys.modules and str(utnet_checkout) not in sys.path  # nothing leaks


def test_json_stays_one_document_whatever_the_checkout_prints(utnet_checkout: Path, capsys):
    code, report, err = _run(["gate", *_repo_args(utnet_checkout)], capsys)
    assert report["command"] == "gate"  # stdout parsed as exactly one JSON document
    assert "Building UTNet" in err and "[Debug] first forward" in err
    assert "Warning: Failed to load MANO model" in err


def test_square_loader_crops_reach_the_model_that_cuts_them(utnet_checkout: Path, capsys):
    batch = torch.load(utnet_checkout.parent / "batch.pt")
    assert tuple(batch["rgb"].shape[-2:]) == (64, 64)  # the model is configured for 64x48
    code, report, err = _run(["loss-breakdown", *_repo_args(utnet_checkout)], capsys)
    assert code in (0, 1) and "loss_table" in report, err


def test_a_batch_the_model_rejects_is_an_input_error_with_its_message(
    utnet_checkout: Path, tmp_path: Path, capsys
):
    batch = torch.load(utnet_checkout.parent / "batch.pt")
    batch["depth"] = batch["depth"][..., :32, :32]  # the model's torch.cat refuses this
    torch.save(batch, tmp_path / "bad.pt")
    code = main(
        ["loss-breakdown", "--repo", str(utnet_checkout), "--batch", str(tmp_path / "bad.pt")]
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert "the model's forward on this batch failed: RuntimeError: Sizes of tensors" in err


@pytest.mark.slow
def test_debug_shows_the_users_traceback_and_keeps_exit_2(
    utnet_checkout: Path, capsys, monkeypatch
):
    (utnet_checkout / "mano_data" / "mano_mean_params.npz").unlink()
    monkeypatch.delenv("UTNET_DIAG_DEBUG", raising=False)
    assert main(["loss-breakdown", *_repo_args(utnet_checkout)]) == 2
    plain = capsys.readouterr().err
    assert "building src.models.utnet.UTNet failed: FileNotFoundError" in plain
    assert "mean_params_path" in plain and "Traceback" not in plain
    monkeypatch.setenv("UTNET_DIAG_DEBUG", "1")
    assert main(["loss-breakdown", *_repo_args(utnet_checkout)]) == 2
    debug = capsys.readouterr().err
    assert "Traceback" in debug and "src/models/utnet.py" in debug  # a frame in the user's code
    assert "np.load(mean_params_path)" in debug


# --- MANO as the user's code loads it ---------------------------------------------------------
@pytest.mark.slow
def test_degenerate_output_names_where_smplx_looked_and_the_fix_works(utnet_checkout: Path, capsys):
    code, report, _ = _run(["loss-breakdown", *_repo_args(utnet_checkout)], capsys)
    degenerate = _checks(report)["pred_degenerate"]
    assert code == 1 and degenerate["status"] == "fail"
    mano_dir = utnet_checkout / "mano_data"
    assert f"smplx.create(model_path='{mano_dir}', model_type='mano')" in degenerate["message"]
    assert (
        f"reads {mano_dir / 'mano' / 'MANO_RIGHT.pkl'}, which does not exist"
        in degenerate["message"]
    )
    advice_notes = " ".join(report["weight_advice"]["notes"])
    assert "3D joint loss: computed, but its gradient does not reach the trunk" in advice_notes
    assert "not computed" not in advice_notes
    command = _convert_command(degenerate["hint"])
    assert command == ["convert-mano", str(mano_dir / "MANO_RIGHT.pkl"),
                       str(mano_dir / "mano" / "MANO_RIGHT.pkl")]  # fmt: skip
    assert main(command) == 0  # creates mano_data/mano/
    capsys.readouterr()
    code, report, _ = _run(["loss-breakdown", *_repo_args(utnet_checkout)], capsys)
    assert _checks(report)["pred_degenerate"]["status"] == "pass"
    requests = report["run"]["mano_requests"]
    assert requests[0]["loaded"] and requests[0]["looked_at"].endswith("mano/MANO_RIGHT.pkl")


def test_official_pickle_where_smplx_looks_is_named_as_chumpy(utnet_checkout: Path, capsys):
    mano_dir = utnet_checkout / "mano_data"
    (mano_dir / "mano").mkdir()
    (mano_dir / "mano" / "MANO_RIGHT.pkl").write_bytes((mano_dir / "MANO_RIGHT.pkl").read_bytes())
    code, report, _ = _run(["loss-breakdown", *_repo_args(utnet_checkout)], capsys)
    degenerate = _checks(report)["pred_degenerate"]
    target = mano_dir / "mano" / "MANO_RIGHT.pkl"
    assert f"reads {target}, a chumpy pickle" in degenerate["message"]
    assert "ModuleNotFoundError: No module named 'chumpy'" in degenerate["message"]
    assert _convert_command(degenerate["hint"]) == [
        "convert-mano",
        str(mano_dir / "MANO_RIGHT.pkl"),
        str(target),
    ]


def test_code_that_opens_the_configured_file_itself_gets_keep_and_convert(
    utnet_checkout: Path, capsys
):
    """smplx.create(model_path=<the .pkl>) reads the configured official file itself: the fix
    must not overwrite it, so it is renamed first."""
    switch(utnet_checkout, "src/models/utnet.py",
           "model_path = mano_path if osp.isdir(mano_path) else osp.dirname(mano_path)",
           "model_path = mano_path")  # fmt: skip
    code, report, _ = _run(["loss-breakdown", *_repo_args(utnet_checkout)], capsys)
    degenerate = _checks(report)["pred_degenerate"]
    target = utnet_checkout / "mano_data" / "MANO_RIGHT.pkl"
    assert (
        f"`mv {target} {target}.chumpy && utnet-diag convert-mano {target}.chumpy {target}`"
        in (degenerate["hint"])
    )


def test_a_hostile_mano_pickle_is_refused_before_smplx_unpickles_it(
    utnet_checkout: Path, tmp_path: Path, capsys
):
    """The checkout swallows every exception of its MANO load; the refusal still ends the run."""
    from utnet_diag.synthetic.trees import unsafe_pickle

    marker = tmp_path / "pwned"
    (utnet_checkout / "mano_data" / "mano").mkdir()
    (utnet_checkout / "mano_data" / "mano" / "MANO_RIGHT.pkl").write_bytes(
        unsafe_pickle(str(marker))
    )
    with pytest.raises(UnsafeInputError, match="MANO file that names globals outside"):
        load_model(repo=utnet_checkout, device="cpu")
    assert main(["gate", *_repo_args(utnet_checkout)]) == 2
    assert "names globals outside the MANO allow-list" in capsys.readouterr().err
    assert not marker.exists()


# --- the predictions of the public checkout's mapping and projection --------------------------
@pytest.fixture
def mano_loaded(utnet_checkout: Path) -> Path:
    mano_dir = utnet_checkout / "mano_data"
    assert main(["convert-mano", str(mano_dir / "MANO_RIGHT.pkl"), str(mano_dir / "mano")]) == 0
    return utnet_checkout


@pytest.mark.slow
def test_the_checkouts_mapping_and_projection_fail_decisively(mano_loaded: Path, capsys):
    code, report, _ = _run(["loss-breakdown", *_repo_args(mano_loaded)], capsys)
    checks = _checks(report)
    order = checks["pred_joint_order"]
    assert order["status"] == "fail", order["message"]
    assert order["details"]["pred_order"] == "mano_read_thumb_first"
    assert "slots 1-3 (thumb1-3) hold index1-3" in order["message"]
    assert "slots 17-19 (pinky1-3) hold thumb1-3" in order["message"]
    spread = checks["pred_kp2d_range"]
    assert spread["status"] == "fail" and "too small" in spread["message"]
    assert spread["value"] < 0.1
    projection = checks["pred_projection"]
    assert projection["status"] == "fail"
    assert "64/48, the model's image aspect: x is divided by the width 48" in projection["message"]


def test_fixed_mapping_and_projection_pass(mano_loaded: Path, capsys):
    switch(mano_loaded, "src/utils/mano_utils.py", 'JOINT_MAPPING = "thumb_first"',
           'JOINT_MAPPING = "mano_order"')  # fmt: skip
    switch(mano_loaded, "src/utils/geometry.py", 'PROJECTION = "utnet"', 'PROJECTION = "crop"')
    code, report, _ = _run(["loss-breakdown", *_repo_args(mano_loaded)], capsys)
    checks = _checks(report)
    for check in ("pred_degenerate", "pred_joint_order", "pred_kp2d_range", "pred_projection"):
        assert checks[check]["status"] == "pass", (check, checks[check]["message"])


def test_labels_checked_with_the_checkouts_mano_and_mirrored_hands_named(
    utnet_checkout: Path, tmp_path: Path, capsys
):
    """gate checks the labels with the MANO file the checkout is configured with; left hands
    fed to its right-hand MANO are named per sample."""
    code, report, _ = _run(["gate", *_repo_args(utnet_checkout)], capsys)
    checks = _checks(report)
    assert checks["mano_consistency"]["status"] == "pass", checks["mano_consistency"]["message"]
    assert checks["handedness"]["status"] == "pass"
    batch = torch.load(utnet_checkout.parent / "batch.pt")
    for key in ("joints_3d_gt", "joint_img"):  # a horizontal flip of samples 1 and 3, pose kept
        batch[key][[1, 3], :, 0] *= -1
    torch.save(batch, tmp_path / "mirrored.pt")
    code, report, _ = _run(
        ["gate", "--repo", str(utnet_checkout), "--batch", str(tmp_path / "mirrored.pt")], capsys
    )
    checks = _checks(report)
    assert code == 1
    assert checks["handedness"]["status"] == "fail"
    assert checks["handedness"]["details"]["left"] == [1, 3]
    assert "(the batch marks them right)" in checks["handedness"]["message"]
    assert checks["mano_consistency"]["message"] == "after the fix of handedness"


@pytest.mark.slow
def test_aux_target_checked_against_the_mano_the_model_built(mano_loaded: Path, capsys):
    """The coarse pose's convention comes from the smplx layer the model's code created."""
    code, report, _ = _run(["gate", *_repo_args(mano_loaded)], capsys)
    assert _checks(report)["aux_target_convention"]["status"] == "pass"
    switch(mano_loaded, "src/models/utnet.py", "flat_hand_mean=True,", "flat_hand_mean=False,")
    code, report, _ = _run(["gate", *_repo_args(mano_loaded)], capsys)
    aux = _checks(report)["aux_target_convention"]
    assert aux["status"] == "fail"
    assert "its MANO: flat_hand_mean=False, use_pca=False" in aux["message"]


def test_inspect_checkpoint_builds_the_model_the_config_describes(
    utnet_checkout: Path, tmp_path: Path, capsys
):
    config = yaml.safe_load((utnet_checkout / "config" / "config.yaml").read_text())
    config["model"]["embed_dim"] = 16
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(config))
    loaded = load_model(repo=utnet_checkout, config=small, device="cpu")
    torch.save({"epoch": 3, "model_state_dict": loaded.model.state_dict()}, tmp_path / "ck.pth")
    argv = ["inspect-checkpoint", str(tmp_path / "ck.pth"), "--repo", str(utnet_checkout)]
    code, report, _ = _run([*argv, "--config", str(small)], capsys)
    assert code == 0 and _checks(report)["checkpoint_keys"]["status"] == "pass"
    code, report, _ = _run(argv, capsys)  # the checkout's own config: embed_dim 32
    assert _checks(report)["checkpoint_keys"]["status"] == "fail"
