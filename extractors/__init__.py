"""Reading fields from a classified page. Readers are chosen by the kind of page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from renraku.extractors.fields import FieldReading
from renraku.extractors.templates import Template
from renraku.extractors.text_layer import TextLayerReader
from renraku.pipeline.pages import Page

# (page, template, classification, reading config) → the readings, or (image pages) the page
# prepared for OCR, which is done for many pages together (pipeline/read.py). The classification
# carries what the classifier found out (text: the shift; image: the registration).
Reader = Callable[[Page, Template, Any, dict[str, Any]], Any]
READERS: dict[str, Reader] = {}


def register(kind: str) -> Callable[[Reader], Reader]:
    def wrap(fn: Reader) -> Reader:
        READERS[kind] = fn
        return fn
    return wrap


@register("text")
def read_text_page(page: Page, template: Template, classification: Any, config: dict[str, Any]) -> list[FieldReading]:
    return TextLayerReader(template, config, classification.transform).read(page)


@register("image")
def prepare_image_page(page: Page, template: Template, classification: Any, config: dict[str, Any]) -> Any:
    from renraku.extractors.image_reader import ImageReader, vocabulary

    return ImageReader(template, config, vocabulary()).prepare(page.image.pixels, classification.fit,
                                                               page.image.channel)
