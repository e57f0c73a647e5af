"""Pipeline spec and manifest: what a job runs on. Knows nothing about torch or MLflow."""

from medprobe.io.manifest import load_manifest
from medprobe.options import format_validation_error
from medprobe.pipeline_spec.loading import SITE_ENV, TRACKING_URI_ENV, load_spec
from medprobe.pipeline_spec.pipeline import DataSpec, ModelSpec, PipelineSpec, TaskSpec
from medprobe.preprocess.options import CT_WINDOW_PRESETS, Preprocessing, VolumeTo2D

__all__ = [
    "CT_WINDOW_PRESETS",
    "SITE_ENV",
    "TRACKING_URI_ENV",
    "DataSpec",
    "ModelSpec",
    "PipelineSpec",
    "Preprocessing",
    "TaskSpec",
    "VolumeTo2D",
    "format_validation_error",
    "load_manifest",
    "load_spec",
]
