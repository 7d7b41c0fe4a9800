"""The model under diagnosis: the reference UTNet, checkpoints, and model sources.

``reference``: :class:`ReferenceUTNet` and its :class:`ReferenceConfig` presets; ``checkpoint``:
safe loading and the ``checkpoint_keys`` report; ``sources``: :func:`load_model` for the
reference model, a UTNet checkout (``--repo``) or a factory (``--model-factory``); ``rotation``:
axis-angle / rotation matrix / 6D conversions.
"""

from utnet_diag.model.checkpoint import CheckpointData, key_report, load_checkpoint, save_checkpoint
from utnet_diag.model.reference import ReferenceConfig, ReferenceUTNet, build_reference
from utnet_diag.model.sources import LoadedModel, load_model

__all__ = [
    "CheckpointData",
    "LoadedModel",
    "ReferenceConfig",
    "ReferenceUTNet",
    "build_reference",
    "key_report",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]
