"""Checks that an image is what the job says it embeds, before any costly step.

Each refusal is a `ReadError` with its own skip category, so the one file is skipped with its reason and the job
goes on (`medprobe.embed.loading`), and `medprobe validate --check-read --spec` predicts the same refusals:

- `derived-object`: a DICOM object that is not an acquired image (an RT dose grid, a segmentation, RT structures,
  a registration or a report): its "pixels" are doses, labels or nothing an image encoder was trained on;
- `modality-mismatch`: the DICOM Modality names another modality than the spec's (a CT in an MRI job). Codes that
  say nothing about the acquisition (OT other, SC secondary capture) pass;
- `single-slice`: a 2D image (or a volume one voxel thick) where the job expects volumes (`preprocessing.inputs`:
  `auto` expects them for MRI and CT);
- `too-small`: an axis the model looks at is more than `SIZE_FACTOR` times smaller than the size it is brought to
  (`preprocessing.size`, else the model's input): a 4×5×7-voxel volume stretched to 224 pixels is not an image.
"""

from __future__ import annotations

from medprobe.errors import ReadError
from medprobe.io.image import MedicalImage
from medprobe.preprocess.input_spec import InputSpec
from medprobe.preprocess.options import PreprocessOptions

SIZE_FACTOR = 16
#: DICOM Modality codes an image of each spec modality may carry; a modality missing here accepts any code.
EXPECTED_CODES: dict[str, frozenset[str]] = {
    "mri": frozenset({"MR"}),
    "ct": frozenset({"CT"}),
    "xray": frozenset({"CR", "DX", "DR", "MG", "RF", "XA", "PX", "IO"}),
    "fundus": frozenset({"OP", "XC"}),
}
#: Codes that say nothing about how the image was acquired: other, secondary capture.
UNSPECIFIC_CODES = frozenset({"OT", "SC"})
#: DICOM objects that are not acquired images, with what they hold.
DERIVED_CODES = {
    "RTDOSE": "an RT dose grid",
    "RTSTRUCT": "RT structure contours",
    "RTPLAN": "an RT plan",
    "SEG": "a segmentation",
    "REG": "a registration",
    "SR": "a structured report",
    "PR": "a presentation state",
    "KO": "a key-object selection",
}
#: Modalities whose images are volumes unless the spec says otherwise.
VOLUME_MODALITIES = frozenset({"mri", "ct"})


class InputCheck:
    """The checks for one job: its modality, whether it expects volumes, and the size the model sees."""

    def __init__(self, data: PreprocessOptions, model_input: InputSpec) -> None:
        self.modality = data.modality
        prep = data.preprocessing
        self.volumes = prep.inputs == "volumes" or (prep.inputs == "auto" and data.modality in VOLUME_MODALITIES)
        self.target = prep.size or model_input.size
        self.slice_axis = _slice_axis(prep.volume_to_2d.strategy, prep.volume_to_2d.axis,
                                      model_input.spatial_dims)

    def __call__(self, image: MedicalImage, source: str = "") -> None:
        """Every check on one image (as `medprobe validate` reads it)."""
        self.modality_of(image, source)
        self.slices(image, source)
        self.size(image, source)

    def modality_of(self, image: MedicalImage, source: str = "") -> None:
        """Raise `ReadError` when the image's DICOM Modality says it is not what the job embeds."""
        code = str(image.metadata.get("modality") or "").upper()
        if code in DERIVED_CODES:
            raise ReadError(source, f"a DICOM {code} object ({DERIVED_CODES[code]}), not an acquired image",
                            "derived-object")
        expected = EXPECTED_CODES.get(self.modality)
        if code and expected and code not in expected and code not in UNSPECIFIC_CODES:
            raise ReadError(source, f"DICOM Modality {code} in a job whose spec says modality {self.modality}",
                            "modality-mismatch")

    def slices(self, image: MedicalImage, source: str = "") -> None:
        """Raise `ReadError` for a 2D image or a one-slice volume where the job expects volumes."""
        shape = image.spatial_shape
        if self.volumes and (len(shape) < 3 or min(shape) == 1):
            raise ReadError(source, f"a single slice ({'x'.join(map(str, shape))} voxels) where the job expects "
                            f"{self.modality} volumes", "single-slice")

    def size(self, image: MedicalImage, source: str = "") -> None:
        """Raise `ReadError` for an image far smaller than what the model sees (the chain checks it after
        orientation and spacing, on the voxels the model will see)."""
        shape = image.spatial_shape
        if self.target is None:
            return
        seen = [size for axis, size in enumerate(shape) if axis != self.slice_axis and size > 1]
        if not seen:
            return
        smallest, wanted = min(seen), min(self.target)
        if smallest * SIZE_FACTOR < wanted:
            raise ReadError(source, f"{'x'.join(map(str, shape))} voxels: an axis of {smallest} would be stretched "
                            f"to {wanted}, more than {SIZE_FACTOR} times", "too-small")


def _slice_axis(strategy: str, axis: str, model_dims: int | None) -> int | None:
    """The axis a 2D model's slices run along (its voxel count is not stretched); None when every axis is seen."""
    if model_dims != 2 or strategy != "slices":
        return None
    return {"sagittal": 0, "coronal": 1, "axial": 2}.get(axis)
