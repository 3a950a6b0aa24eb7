"""The emulator's techniques: a handful that cover every input and output type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    technique_id: str
    slug: str
    name: str
    inputs: tuple[tuple[str, str, bool], ...]  # (id, type, required)
    run_cost: float
    outputs: tuple[tuple[str, str], ...]  # (output id, type)


CATALOGUE = (
    Spec("tech_text2img", "text-to-image", "Text to image",
         (("prompt", "text", True), ("style", "text", False), ("reference", "imageUrl", False)),
         0.04, (("image", "imageUrl"),)),
    Spec("tech_img2vid", "image-to-video", "Image to video",
         (("image", "imageUrl", True), ("prompt", "text", False)), 0.25, (("video", "videoUrl"),)),
    Spec("tech_caption", "caption", "Caption an image", (("image", "imageUrl", True),), 0.01,
         (("caption", "text"),)),
    Spec("tech_multi", "multi", "Many outputs", (("prompt", "text", True),), 0.10,
         (("image", "imageUrl"), ("audio", "audioUrl"), ("document", "documentUrl"),
          ("summary", "text"))),
)  # fmt: skip

EXTENSIONS = {"imageUrl": ("png", "image/png"), "videoUrl": ("mp4", "video/mp4"),
              "audioUrl": ("mp3", "audio/mpeg"), "documentUrl": ("pdf", "application/pdf")}  # fmt: skip


def find(technique: str, open_catalogue: bool) -> Spec | None:
    for spec in CATALOGUE:
        if technique in (spec.technique_id, spec.slug):
            return spec
    if open_catalogue:
        return Spec(technique, technique, technique, (), 0.05, (("image", "imageUrl"),))
    return None
