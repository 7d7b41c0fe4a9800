"""Faults planted in the test trees: fault name -> sample indices."""

HO3D_PLANTED = {
    "nan_joints": [1],
    "mm_joints": [2],
    "unflipped": [3],
    "collapsed_joints": [4],
    "huge_betas": [5],
    "unannotated": [6],
    "root_only": [7],
    "missing_meta": [8],
    "truncated_meta": [9],
    "unsafe_meta": [10],
    "truncated_rgb": [11],
    "truncated_depth": [12],
    "depth_scale": [13],
}
HO3D_CLEAN = [0, 14, 15]

# Two subjects x one sequence x two cameras x three frames; huge_betas marks subject 2's
# calibration (samples 6-11).
DEXYCB_PLANTED = {
    "nan_joints": [1],
    "no_hand": [2],
    "shifted_2d": [3],
    "missing_labels": [4],
    "truncated_labels": [5],
    "huge_betas": [6],
    "object_labels": [7],
    "truncated_depth": [8],
}
DEXYCB_CLEAN = [0]
