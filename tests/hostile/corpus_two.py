"""The round-two corpus: hostile and broken inputs by class (memory, containers, cost, hangs,
outputs, concurrent runs, parser corners, accepted garbage, printing)."""

from __future__ import annotations

import sys

import numpy as np

from tests.hostile.round_two import Case
from tests.mano.official_pickles import official_structure_bytes


class _Call:
    """Pickles as ``function(*args)``: a call a pickle may name through an allowed global."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


def _nested(depth: int):
    value: list = [0.0]
    for _ in range(depth):
        value = [value]
    return value


def mano_cases(root, out) -> list[Case]:
    """MANO pickles that claim memory, nest too deep, or hold values no MANO file has."""

    def case(name: str, mutate, expect: str = "input", check=None) -> Case:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(20_000)  # the pickler recurses into the deeply nested case
        try:
            data, _ = official_structure_bytes(mutate=mutate)
        finally:
            sys.setrecursionlimit(limit)
        path = root / f"MANO_{name}.pkl"
        path.write_bytes(data)
        target = out / f"converted_{name}.pkl"
        outputs = [target] if expect == "input" else []
        return Case(f"mano_{name}", "mano", ["convert-mano", str(path), str(target)], path,
                    expect=expect, outputs=outputs, check=check)  # fmt: skip

    def set_key(key, value):
        return lambda d, classes: d.__setitem__(key, value)

    def ch_with_empty_state(d, classes):
        ch_class = classes[0]
        weights = ch_class()
        weights.__getstate__ = lambda: ()
        d["weights"] = weights

    def select_two_unknown(d, classes):
        # one index and a shape of two unknown sizes: the sizes multiply to the count
        d["shapedirs"].__dict__.update({"idxs": np.array([0]), "preferred_shape": (-1, -1)})

    def sparse_extra(d, classes):
        matrix = classes[2]()
        matrix.__dict__.update({"data": np.zeros(0), "indices": np.zeros(0, np.int32),
                                "indptr": np.zeros(2, np.int32), "_shape": (200_000_000, 1)})  # fmt: skip
        d["huge_regressor"] = matrix

    def small_output(result) -> None:
        target = out / "converted_sparse_extra.pkl"
        assert target.stat().st_size < 5 << 20, target.stat().st_size
        assert "huge_regressor" in result.stderr and "not copied" in result.stderr

    nan_faces = np.zeros((1538, 3))
    nan_faces[7, 1] = np.nan
    return [
        case("ndarray_claim", set_key("v_template", _Call(np.ndarray, (778, 3, 10**6)))),
        case(
            "dtype_claim", set_key("hands_mean", _Call(np.ndarray, (45,), np.dtype("V2000000000")))
        ),
        case("sparse_extra", sparse_extra, expect="ok", check=small_output),
        case("select_two_unknown", select_two_unknown),
        case("ch_empty_state", ch_with_empty_state),
        case("deep_list", set_key("v_template", _nested(3000))),
        case("nan_faces", set_key("f", nan_faces)),
        case("complex", set_key("v_template", np.zeros((778, 3), complex) + 1j)),
    ]


def _batch(n: int = 4, seed: int = 0, scale: float = 1.0) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    kp3d = torch.randn(n, 21, 3, generator=g) * 50 + torch.tensor([0.0, 0.0, 500.0])
    return {
        "keypoints_3d": torch.cat([kp3d * scale, torch.ones(n, 21, 1)], -1),
        "keypoints_2d": torch.cat(
            [torch.rand(n, 21, 2, generator=g) - 0.5, torch.ones(n, 21, 1)], -1
        ),
    }


def _npy_header(shape: tuple, dtype: str) -> bytes:
    """A version 1.0 .npy header claiming ``shape`` of ``dtype`` (padded to 64 bytes)."""
    text = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode("latin1")
    text += b" " * (64 - (len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


def _npz_member_claiming(path, name: str, shape: tuple, dtype: str = "<f8") -> None:
    """An .npz whose member's header claims ``shape`` but holds a few bytes."""
    import zipfile

    member = _npy_header(shape, dtype) + b"\x00" * 64
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}.npy", member)


def _npz_bomb(path, gib: float) -> None:
    """A small .npz with one uint8 member that inflates to ``gib`` GiB of zeros."""
    import zipfile

    count = int(gib * 2**30)
    zeros = bytes(16 << 20)
    archive = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
    with archive, archive.open("rgb.npy", "w", force_zip64=True) as member:
        member.write(_npy_header((count,), "|u1"))
        left = count
        while left:
            member.write(zeros[: min(left, len(zeros))])
            left -= min(left, len(zeros))


def container_cases(root, out) -> list[Case]:
    """Files whose headers claim memory: npz members, images, a checkpoint's model size."""
    import torch

    claim = root / "claim.npz"
    _npz_member_claiming(claim, "keypoints_3d", (10**12,))
    bomb = root / "bomb.npz"
    _npz_bomb(bomb, 1.5)
    ckpt = root / "huge_model.pt"
    torch.save({"model_state_dict": {}, "config": {"name": "tiny", "embed_dim": 10_000_000}}, ckpt)
    big = root / "big_model.pt"
    torch.save({"model_state_dict": {}, "config": {"name": "tiny", "embed_dim": 8192,
                "vit_depth": 128, "vit_num_heads": 8}}, big)  # fmt: skip
    return [
        Case("npz_header_claim", "container", ["check-batch", str(claim)], claim),
        Case("npz_zip_bomb", "container", ["check-batch", str(bomb)], bomb),
        Case("ckpt_config_size", "container", ["gate", "--checkpoint", str(ckpt)], ckpt),
        Case("ckpt_config_memory", "container", ["gate", "--checkpoint", str(big)], big),
    ]


def _ho3d(root, name: str, frames: int = 3):
    from utnet_diag.synthetic.trees import write_ho3d_tree

    tree = root / name
    write_ho3d_tree(tree, sequences=("ABF10",), frames_per_sequence=frames, seed=1)
    return tree


def _no_hang(result) -> None:
    assert "Traceback" not in result.stderr


def tree_cases(root, out) -> list[Case]:
    """Dataset trees with a FIFO, a bomb image, an endless split line, an unsafe meta.yml."""
    import os

    from PIL import Image

    from utnet_diag.synthetic.trees import write_dexycb_tree

    cases = []
    for what, rel in (
        ("meta", "train/ABF10/meta/0001.pkl"),
        ("depth", "train/ABF10/depth/0001.png"),
    ):
        tree = _ho3d(root, f"ho3d_fifo_{what}")
        (tree / rel).unlink()
        os.mkfifo(tree / rel)
        cases.append(Case(f"ho3d_{what}_fifo", "hang", ["scan", "--dataset", "ho3d", "--root",
                          str(tree)], tree, expect="ok", check=_no_hang, timeout=60))  # fmt: skip
    tree = _ho3d(root, "ho3d_fifo_meta_noimg")
    (tree / "train/ABF10/meta/0001.pkl").unlink()
    os.mkfifo(tree / "train/ABF10/meta/0001.pkl")
    cases.append(Case("ho3d_meta_fifo_no_images", "hang", ["scan", "--dataset", "ho3d", "--root",
                      str(tree), "--no-images"], tree, expect="ok", timeout=60))  # fmt: skip

    tree = _ho3d(root, "ho3d_bomb_png")
    Image.new("L", (12000, 12000)).save(tree / "train/ABF10/depth/0001.png")

    def named_and_quiet(result) -> None:
        assert "depth_readable" in result.stdout
        assert "DecompressionBomb" not in result.stderr

    cases.append(Case("ho3d_depth_12000px", "container", ["scan", "--dataset", "ho3d", "--root",
                      str(tree)], tree, expect="ok", check=named_and_quiet, timeout=60))  # fmt: skip

    tree = _ho3d(root, "ho3d_long_line")
    (tree / "train.txt").write_text("ABF10/" + "0" * 30_000_000 + "\n")
    cases.append(Case("ho3d_split_30mb_line", "hang", ["scan", "--dataset", "ho3d", "--root",
                      str(tree)], tree, names="train.txt", timeout=60))  # fmt: skip

    dex = root / "dexycb_tag"
    write_dexycb_tree(dex, subjects=("20200709-subject-01",), sequences=("20200709_141754",),
                      num_frames=1, seed=2)  # fmt: skip
    meta = dex / "20200709-subject-01/20200709_141754/meta.yml"
    meta.write_text("serials: !!python/object/apply:os.system ['true']\nnum_frames: 1\n")
    cases.append(Case("dexycb_meta_python_tag", "print", ["scan", "--dataset", "dexycb", "--root",
                      str(dex)], dex, names="20200709_141754/meta.yml"))  # fmt: skip
    return cases


def output_cases(root, out) -> list[Case]:
    """Outputs that would overwrite an input or are folders."""
    import torch

    batch = root / "out_batch.pt"
    torch.save(_batch(), batch)
    config = root / "out_config.yaml"
    config.write_text("loss:\n  w_2d: 1.0\n")
    tree = _ho3d(root, "ho3d_out")
    return [
        Case("junit_is_the_input", "output", ["check-batch", str(batch), "--junit", str(batch)],
             batch),
        Case("junit_is_a_directory", "output", ["check-batch", str(batch), "--junit", str(out)],
             batch, names=str(out)),
        Case("scan_out_is_a_directory", "output", ["scan", "--dataset", "ho3d", "--root", str(tree),
             "--out", str(out)], tree, names=str(out)),
        Case("junit_is_the_config", "output", ["check-batch", str(batch), "--config", str(config),
             "--junit", str(config)], config),
    ]  # fmt: skip


def _log(root):
    path = root / "train.log"
    if not path.exists():
        block = "[Epoch {e}, Iter {i}] Loss breakdown:\n  2D keypoint loss: 100.0 → ok\n"
        path.write_text("".join(block.format(e=0, i=i) for i in range(5)), encoding="utf-8")
    return path


def parser_cases(root, out) -> list[Case]:
    """YAML, batch and file-name corners, and printing under an ASCII locale."""
    import torch

    batch = root / "ok_batch.pt"
    torch.save(_batch(), batch)
    digits = root / "digits.yaml"
    digits.write_text("loss:\n  w_3d_joint: " + "9" * 5000 + "\n")
    big = root / "big_number.yaml"
    big.write_text("loss:\n  w_3d_joint: " + "9" * 4000 + "\n")
    deep = root / "deep.yaml"
    deep.write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    meta = root / "meta_device.pt"
    torch.save({k: v.to("meta") for k, v in _batch().items()}, meta)
    long_name = root / ("n" * 300 + ".pt")
    escape = root / "e\x1b[31mvil.pt"
    escape.write_bytes(b"")

    def escaped(result) -> None:
        assert "\x1b" not in result.stderr and "\\x1b" in result.stderr

    from utnet_diag.synthetic.sample import default_batch

    zero = root / "zero_gt.pt"  # the default batch with every joint at the origin
    tensors = {k: v.clone() for k, v in default_batch().tensors.items()}
    for key in ("keypoints_3d", "keypoints_2d"):
        tensors[key] = torch.zeros_like(tensors[key])  # coordinates and confidences
    torch.save(tensors, zero)

    def no_numpy_warnings(result) -> None:
        assert "RuntimeWarning" not in result.stderr and "Mean of empty" not in result.stderr

    def printed(result) -> None:
        assert "UnicodeEncodeError" not in result.stderr and result.stdout

    ascii_env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    return [
        Case("yaml_5000_digits", "parser", ["check-batch", str(batch), "--config", str(digits)],
             digits),
        Case("yaml_4000_digits", "parser", ["loss-breakdown", "--config", str(big)], big),
        Case("yaml_20000_deep", "parser", ["check-batch", str(batch), "--config", str(deep)], deep),
        Case("batch_meta_device", "parser", ["check-batch", str(meta)], meta),
        Case("name_300_chars", "parser", ["check-batch", str(long_name)], long_name,
             names="n" * 50),
        Case("name_with_escape_codes", "print", ["check-batch", str(escape)], escape,
             names="vil.pt", check=escaped),
        Case("all_zero_gt", "print", ["gate", "--batch", str(zero)], zero, expect="ok",
             check=no_numpy_warnings),
        Case("ascii_locale_gate", "print", ["check-batch", str(batch)], batch, expect="ok",
             env=ascii_env, check=printed),
        Case("ascii_locale_parse_log", "print", ["parse-log", str(_log(root))], _log(root),
             expect="ok", env=ascii_env, check=printed),
    ]  # fmt: skip


def cost_cases(root, out) -> list[Case]:
    """Cost that must stay linear in the batch size."""
    import torch

    path = root / "random_1000.pt"
    torch.save(_batch(1000), path)
    return [Case("check_batch_1000_random", "cost", ["check-batch", str(path)], path,
                 expect="ok", timeout=60)]  # fmt: skip


def build(root) -> list[Case]:
    root.mkdir(parents=True, exist_ok=True)
    out = root / "out"
    out.mkdir(exist_ok=True)
    return [
        *mano_cases(root, out),
        *container_cases(root, out),
        *tree_cases(root, out),
        *output_cases(root, out),
        *parser_cases(root, out),
        *cost_cases(root, out),
    ]
