"""On-disk encodings: HO3D depth packing, Python 2 meta pickles, restricted unpickling, crops."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from utnet_diag.datasets.common import (
    crop_image,
    hand_crop_boxes,
    normalize_to_crop,
    project,
    sample_at,
)
from utnet_diag.datasets.ho3d import DEPTH_SCALE, decode_depth, encode_depth, read_meta
from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.synthetic.trees import py2_meta_pickle, unsafe_pickle


def test_depth_round_trip_through_png_with_high_bytes(tmp_path):
    # 0.6 m is 4801 units: low byte 193 in R, high byte 18 in G; uint8 arithmetic would wrap.
    depth = np.array([[0.0, 0.6], [1.2, 65535 * DEPTH_SCALE]])
    packed = encode_depth(depth)
    assert round(0.6 / DEPTH_SCALE) == 4801
    assert packed[0, 1].tolist() == [193, 18, 0]
    assert packed[1, 1].tolist() == [255, 255, 0]
    path = tmp_path / "d.png"
    Image.fromarray(packed).save(path)
    pixels = np.asarray(Image.open(path))
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 2, 3)
    decoded = decode_depth(pixels)
    np.testing.assert_allclose(decoded, depth, atol=DEPTH_SCALE)
    # the official formula on cv2's BGR order: img[:,:,2] + img[:,:,1]*256 (R low, G high)
    bgr = pixels[..., ::-1].astype(np.int64)
    np.testing.assert_allclose(decoded, (bgr[..., 2] + bgr[..., 1] * 256) * DEPTH_SCALE, rtol=1e-6)
    # the bug the decoder avoids: uint8 arithmetic overflows on NumPy 2
    with pytest.raises(OverflowError):
        _ = pixels[..., 0] + pixels[..., 1] * 256


def test_py2_meta_pickle_reads_back_exactly(tmp_path):
    meta = {
        "handJoints3D": np.random.default_rng(0).normal(size=(21, 3)).astype(np.float32),
        "camMat": np.eye(3),
        "handBeta": None,
        "objName": "021_bleach_cleanser",
        "objLabel": 12,
        "scale": 1.5,
    }
    data = py2_meta_pickle(meta)
    # Python 2 layout: numpy.core globals, 8-bit strings, no _codecs.
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in data
    assert b"_codecs" not in data and b"numpy._core" not in data
    path = tmp_path / "0000.pkl"
    path.write_bytes(data)
    loaded = read_meta(str(path))
    assert set(loaded) == set(meta)
    np.testing.assert_array_equal(loaded["handJoints3D"], meta["handJoints3D"])
    assert loaded["handJoints3D"].dtype == np.float32
    np.testing.assert_array_equal(loaded["camMat"], np.eye(3))
    assert loaded["handBeta"] is None and loaded["objLabel"] == 12 and loaded["scale"] == 1.5
    assert loaded["objName"] == "021_bleach_cleanser"


def test_python3_protocol2_meta_pickle_is_read(tmp_path):
    # A meta re-saved from Python 3 with protocol 2 stores bytes via _codecs.encode.
    meta = {"camMat": np.arange(9.0).reshape(3, 3), "s": np.float64(2.5)}
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(meta, protocol=2))
    loaded = read_meta(str(path))
    np.testing.assert_array_equal(loaded["camMat"], meta["camMat"])
    assert float(loaded["s"]) == 2.5


def test_forbidden_global_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pkl"
    path.write_bytes(unsafe_pickle(str(marker)))
    with pytest.raises(UnsafeInputError, match="os.system"):
        read_meta(str(path))
    assert not marker.exists()


def test_truncated_meta_is_an_input_error(tmp_path):
    data = py2_meta_pickle({"camMat": np.eye(3)})
    path = tmp_path / "t.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated|corrupt"):
        read_meta(str(path))


def test_projection_crop_and_normalisation():
    cam_k = np.array([[[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]])
    points = np.array([[[0.0, 0.0, 500.0], [50.0, -25.0, 500.0]]])
    uv = project(points, cam_k)
    np.testing.assert_allclose(uv[0], [[320, 240], [370, 215]])
    boxes = hand_crop_boxes(uv)
    np.testing.assert_allclose(boxes[0], [345, 227.5, 75.0])  # side 1.5 * 50 px
    kp = normalize_to_crop(uv, boxes)
    np.testing.assert_allclose(kp[0], [[-1 / 3, 1 / 6], [1 / 3, -1 / 6]])
    assert np.abs(kp).max() <= 0.5


def test_crop_image_pads_outside_and_samples_nearest():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = crop_image(image, np.array([1.0, 1.0, 4.0]), (4, 4))
    # box covers x, y in [-1, 3): first row and column fall outside the image
    assert out[0].tolist() == [0, 0, 0, 0]
    assert out[1].tolist() == [0, 0, 1, 2]
    assert out[3].tolist() == [0, 8, 9, 10]
    values = sample_at(image, np.array([[3.0, 2.0], [4.0, 0.0], [np.nan, 1.0]]))
    assert values[0] == 11 and np.isnan(values[1]) and np.isnan(values[2])


def test_image_bytes_of_a_truncated_png_do_not_decode():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8) + 7).save(buf, format="PNG")
    data = buf.getvalue()[:40]
    with pytest.raises(Exception):  # noqa: B017 - Pillow raises several kinds
        Image.open(io.BytesIO(data)).load()
