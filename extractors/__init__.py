"""Reading fields from a classified page. Readers are chosen by the kind of page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from renraku.extractors.fields import FieldReading
from renraku.extractors.templates import Template
from renraku.extractors.text_layer import TextLayerReader
from renraku.pipeline.pages import Page

# (page, template, classification, reading config) → (readings, picture): the classification carries
# what the classifier found out (text: the shift; image: the registration); the picture is the page
# as the boxes see it (image pages: resampled into template space), kept for the review desk.
Reader = Callable[[Page, Template, Any, dict[str, Any]], tuple[list[FieldReading], Any]]
READERS: dict[str, Reader] = {}


def register(kind: str) -> Callable[[Reader], Reader]:
    def wrap(fn: Reader) -> Reader:
        READERS[kind] = fn
        return fn
    return wrap


@register("text")
def read_text_page(page: Page, template: Template, classification: Any,
                   config: dict[str, Any]) -> tuple[list[FieldReading], Any]:
    return TextLayerReader(template, config, classification.transform).read(page), None


@register("image")
def read_image_page(page: Page, template: Template, classification: Any,
                    config: dict[str, Any]) -> tuple[list[FieldReading], Any]:
    from renraku.extractors.image_reader import ImageReader, vocabulary

    reader = ImageReader(template, config, vocabulary())
    readings = reader.read(page.image.pixels, classification.fit, page.image.channel)
    return readings, reader.picture
