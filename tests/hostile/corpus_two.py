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


def build(root) -> list[Case]:
    root.mkdir(parents=True, exist_ok=True)
    out = root / "out"
    out.mkdir(exist_ok=True)
    return [*mano_cases(root, out)]
