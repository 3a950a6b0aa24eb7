"""The emulator's techniques: a handful that cover every input and output type between them."""

from __future__ import annotations

from dataclasses import dataclass

INPUT_TYPES = ("text", "imageUrl", "videoUrl")

# Output type -> (file extension, content type) of the media file the emulator serves for it.
MEDIA_TYPES: dict[str, tuple[str, str]] = {
    "imageUrl": ("png", "image/png"),
    "videoUrl": ("mp4", "video/mp4"),
    "audioUrl": ("mp3", "audio/mpeg"),
    "documentUrl": ("pdf", "application/pdf"),
}

GENERIC_RUN_COST = 0.05


@dataclass(frozen=True, slots=True)
class InputSpec:
    id: str
    type: str
    required: bool

    @property
    def name(self) -> str:
        return self.id.replace("_", " ").capitalize()


@dataclass(frozen=True, slots=True)
class OutputSpec:
    id: str
    type: str


@dataclass(frozen=True, slots=True)
class TechniqueSpec:
    technique_id: str
    slug: str
    name: str
    inputs: tuple[InputSpec, ...]
    run_cost: float
    outputs: tuple[OutputSpec, ...]
    # A stand-in for a technique the catalogue does not know (open_catalogue): takes any inputs.
    generic: bool = False

    def declared(self, input_id: str) -> InputSpec | None:
        return next((i for i in self.inputs if i.id == input_id), None)


def _spec(
    technique_id: str,
    slug: str,
    name: str,
    inputs: list[tuple[str, str, bool]],
    run_cost: float,
    outputs: list[tuple[str, str]],
) -> TechniqueSpec:
    return TechniqueSpec(
        technique_id=technique_id,
        slug=slug,
        name=name,
        inputs=tuple(InputSpec(*i) for i in inputs),
        run_cost=run_cost,
        outputs=tuple(OutputSpec(*o) for o in outputs),
    )


CATALOGUE: dict[str, TechniqueSpec] = {
    spec.technique_id: spec
    for spec in (
        _spec(
            "tech_text2img",
            "text-to-image",
            "Text to image",
            [("prompt", "text", True), ("style", "text", False), ("reference", "imageUrl", False)],
            0.04,
            [("image", "imageUrl")],
        ),
        _spec(
            "tech_img2vid",
            "image-to-video",
            "Image to video",
            [("image", "imageUrl", True), ("prompt", "text", False)],
            0.25,
            [("video", "videoUrl")],
        ),
        _spec(
            "tech_caption",
            "caption",
            "Caption an image",
            [("image", "imageUrl", True)],
            0.01,
            [("caption", "text")],
        ),
        _spec(
            "tech_multi",
            "multi",
            "Many outputs",
            [("prompt", "text", True)],
            0.10,
            [
                ("image", "imageUrl"),
                ("audio", "audioUrl"),
                ("document", "documentUrl"),
                ("summary", "text"),
            ],
        ),
    )
}
_BY_SLUG = {spec.slug: spec for spec in CATALOGUE.values()}


def find(ref: str, open_catalogue: bool = False) -> TechniqueSpec | None:
    """The technique a path names by id or slug; with open_catalogue, unknown ones exist too."""
    spec = CATALOGUE.get(ref) or _BY_SLUG.get(ref)
    if spec is not None or not open_catalogue or not ref:
        return spec
    return TechniqueSpec(
        technique_id=ref,
        slug=ref,
        name=f"Generic technique {ref}",
        inputs=(InputSpec("prompt", "text", False),),
        run_cost=GENERIC_RUN_COST,
        outputs=(OutputSpec("image", "imageUrl"),),
        generic=True,
    )
