"""Reading fields from a classified page. Readers are chosen by the kind of page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from renraku.extractors.fields import FieldReading
from renraku.extractors.templates import Template
from renraku.extractors.text_layer import TextLayerReader, Transform
from renraku.pipeline.pages import Page

Reader = Callable[[Page, Template, Transform, dict[str, Any]], list[FieldReading]]
READERS: dict[str, Reader] = {}


def register(kind: str) -> Callable[[Reader], Reader]:
    def wrap(fn: Reader) -> Reader:
        READERS[kind] = fn
        return fn
    return wrap


@register("text")
def read_text_page(page: Page, template: Template, transform: Transform, config: dict[str, Any]) -> list[FieldReading]:
    return TextLayerReader(template, config, transform).read(page)
