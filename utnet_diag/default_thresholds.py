"""Each check's default threshold in words, for ``utnet-diag checks``: written from the constants
the checks use (so a changed constant changes this text), never typed twice.

Loads the check modules (torch): imported by the catalog only.
"""

from __future__ import annotations

import math

from utnet_diag.checks import amp, grad, step
from utnet_diag.checks import conventions as conv
from utnet_diag.checks import loss as loss_checks
from utnet_diag.checks.batch import THRESHOLDS as TH
from utnet_diag.datasets import checks as ds
from utnet_diag.diagnostics.overfit import OverfitOptions
from utnet_diag.evaluation import checks as ev
from utnet_diag.geometry.mano_conventions import AGREE_MM
from utnet_diag.logs.checks import LogCheckOptions
from utnet_diag.mano.convert import REST_SIZE_MM, ROUNDTRIP_TOLERANCE_MM
from utnet_diag.measures import HAND_SPAN_MM
from utnet_diag.spec import TERM

STRUCTURAL = "none: a structural check (present, readable, safe)"


def _range(term: str) -> str:
    spec = TERM[term]
    alarm = f", alarm >= {spec.alarm_at:g}" if spec.alarm_at is not None else ""
    return f"healthy < {spec.healthy_below:g}{alarm} (spec; diag: ranges: to change)"


def default_thresholds() -> dict[str, str]:
    """Check id -> its default threshold in words."""
    return {**_data_checks(), **_model_checks(), **_run_checks(), **_file_checks(),
            **_eval_checks()}  # fmt: skip


def _eval_checks() -> dict[str, str]:
    lo, hi = HAND_SPAN_MM
    half = f"at most {ev.BETTER_BY:g}x"
    return {
        "eval_units": f"joint and mesh span {lo:g}-{hi:g} mm in the protocol's unit",
        "eval_joint_order": f"fails when another order (known, or matched to the GT) has {half}"
        " the aligned error",
        "eval_frame": f"fails when y and z negated give {half} the root-relative error",
        "eval_mirrored": f"fails when a sample's x-mirror has {half} its fit error (samples with"
        f" an error over {ev.MIRROR_FLOOR:g} x the hand span)",
        "eval_mesh": "the ground truth's vertex count (778)",
        "eval_root_relative": f"wrist at the origin in < {ev.ROOT_AT_ORIGIN:.0%} of samples",
        "eval_ids": "each image id once",
    }


def _data_checks() -> dict[str, str]:
    lo, hi = HAND_SPAN_MM
    return {
        "schema": "every spec key present, one batch size",
        "finite": "0 NaN/Inf",
        "conf_range": "[0, 1]",
        "kp2d_range": f"|x|, |y| <= {TH.kp2d_limit:g} (crop units)",
        "kp3d_units": f"hand span {lo:g}-{hi:g} mm",
        "image_range": f"|rgb| <= {TH.rgb_normalized_abs_max:g} (normalized)",
        "image_content": f"padding share < {TH.image_padding_warn:g} (fail at"
        f" {TH.image_padding_fail:g})",
        "depth_content": f"depth within {TH.depth_agree_mm:g} mm of the joints' z",
        "mano_pose": f"median hand-joint angle < {TH.pose_degrees_median_rad:.4g} rad",
        "mano_shape": f"|beta| <= {TH.beta_warn_abs:g} (fail above {TH.beta_fail_abs:g})",
        "joint_order": "the spec's order fits best",
        "root_index": "wrist at index 0",
        "coord_frame": f"z > {conv.CAMERA_MIN_DEPTH_MM:g} mm (in front of the camera)",
        "handedness": "right hands (or the batch's flags)",
        "kp2d_kp3d_consistency": f"residual <= {conv.PROJ_FAIL:g} of the 2D spread, x/y scale"
        f" 1 +- {conv.ANISO_TOL:g}",
        "mano_consistency": f"MANO joints within {AGREE_MM:g} mm of keypoints_3d",
        "loader_augmentation": "no check fails only with augmentation on",
        "dataset_files": "every selected frame read and annotated",
    }


def _model_checks() -> dict[str, str]:
    lo, hi = HAND_SPAN_MM
    return {
        "checkpoint_keys": "no missing or unexpected keys",
        "loss_finite": "every term finite",
        "loss_2d": _range("loss_2d"),
        "loss_3d_joint": _range("loss_3d_joint") + "; exactly 0 fails",
        "loss_prior": _range("loss_prior"),
        "loss_aux": _range("loss_aux"),
        "loss_vert": "finite, not exactly 0 (the spec gives no range)",
        "loss_weights": f"weights in the spec's ranges; no term above {loss_checks.DOMINANT_SHARE:g}"
        " of the total",
        "pred_degenerate": "outputs not all zero",
        "pred_kp2d_range": f"|x|, |y| <= {loss_checks.KP2D_LIMIT:g}; spread within"
        f" {loss_checks.KP2D_SPREAD_FACTOR:g}x the ground truth's",
        "pred_kp3d_units": f"hand span {lo:g}-{hi:g} mm",
        "pred_joint_order": "the spec's order fits best",
        "pred_projection": f"residual <= {conv.PROJ_FAIL:g} of the 2D spread",
        "aux_target_convention": "the coarse pose and mano_pose in one convention",
        "grad_finite": "every gradient finite",
        "grad_dead": "every trainable tensor gets a non-zero gradient",
        "grad_vanishing": f"grad/param >= {grad.VANISH_RELATIVE:g} x the median",
        "grad_exploding": f"gradient norm < {grad.EXPLODE_WARN:g} (fail at {grad.EXPLODE_FAIL:g})",
        "grad_reach": "every active term reaches the trunk",
        "step_clip": f"clipping shrinks the optimiser's update by at most"
        f" {1 / step.CLIP_SHRINK_WARN:g}x",
        "step_update": f"update/weight norm {step.UPDATE_LOW:g} to {step.UPDATE_HIGH:g} per group"
        f" (fail above {step.UPDATE_FAIL:g})",
        "amp_overflow": "0 terms or outputs non-finite under autocast that are finite in float32",
        "amp_precision": f"each term within {amp.TERM_DRIFT:.0%} of float32; float16: each term"
        f" below {amp.FP16_MAX:g}",
        "amp_scaler": "float16: the GradScaler's scale stays >= 1; bfloat16: finite gradients",
        "grad_balance": f"no supervision term below 1/{grad.DROWN_RATIO:g} of the strongest;"
        f" cosine > {grad.CONFLICT_COSINE:g}",
    }


def _run_checks() -> dict[str, str]:
    log, overfit = LogCheckOptions(), OverfitOptions()
    return {
        "overfit_finite": "every step finite",
        "overfit_total_drop": f"final total < {overfit.target_fraction:g} x the first",
        "overfit_terms": f"every data term below {overfit.stall_fraction:g} x its start",
        "overfit_mpjpe": f"MPJPE < {overfit.mpjpe_threshold_mm:g} mm",
        "overfit_weights_moved": f"relative change > {overfit.moved_rtol:g} per group",
        "compare_regression": "B within --max-regression of A",
        "log_parsed": "at least one loss block",
        "log_finite": "every logged value finite",
        "log_loss_2d": _range("loss_2d"),
        "log_loss_3d_joint": _range("loss_3d_joint") + "; exactly 0 fails",
        "log_loss_prior": _range("loss_prior"),
        "log_loss_aux": _range("loss_aux"),
        "log_stuck": f"no term equal over {log.stuck_window} blocks",
        "log_trend": f"last-window median < {log.divergence_ratio:g} x the best earlier",
        "log_total_consistency": f"total = weighted sum within the printed precision (+"
        f" {log.consistency_rtol:g} relative)",
    }


def _file_checks() -> dict[str, str]:
    return {
        **dict.fromkeys(
            (
                *ds.META_FILE_CHECKS,
                *ds.LABELS_FILE_CHECKS,
                "calibration_present",
                "annotation_present",
                "rgb_readable",
                "depth_readable",
                "mano_complete",
                "mano_plain_arrays",
                "mano_file_name",
            ),
            STRUCTURAL,
        ),  # fmt: skip
        "kp3d_in_front": "every joint z > 0",
        "bone_lengths": f"bones {ds.MIN_BONE_MM:g}-{ds.MAX_BONE_MM:g} mm",
        "kp2d_in_image": "at most 10 of 21 projected joints outside the image",
        "kp2d_agrees": f"stored 2D within {ds.KP2D_AGREE_PX:g} px of the projection",
        "camera_intrinsics": f"principal point within {ds.PRINCIPAL_POINT_TOLERANCE:g} of the"
        " image size from its centre",
        "mano_pose_range": f"joint angles <= {math.pi:.4g} rad",
        "mano_shape_range": f"mean(beta^2) < {ds.SHAPE_PRIOR_HEALTHY:g}, |beta| <="
        f" {ds.BETA_WARN:g}",
        "depth_agrees": f"within {ds.DEPTH_WARN_MM:g} mm (fail at {ds.DEPTH_FAIL_MM:g})",
        "mano_smplx_roundtrip": f"smplx output within {ROUNDTRIP_TOLERANCE_MM:g} mm",
        "mano_invariants": "J_regressor and skinning-weight rows sum to 1; MANO's kinematic tree",
        "mano_rest_size": f"wrist to middle1 {REST_SIZE_MM[0]:g}-{REST_SIZE_MM[1]:g} mm at rest",
    }
