"""Loading image pages: square pixels for faxes, EXIF orientation, guard rails."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from renraku.errors import BrokenInput
from renraku.pipeline import images
from renraku.pipeline.pages import JPEG, PNG, TIFF, load_pages


def _tiff(frames: int, dpi: tuple[int, int], size: tuple[int, int] = (1728, 1100)) -> bytes:
    imgs = [Image.new("1", size, 1) for _ in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, "TIFF", save_all=True, append_images=imgs[1:], compression="group4", dpi=dpi)
    return buf.getvalue()


def test_a_standard_fax_is_resampled_to_square_pixels() -> None:
    fine, = images.load_image_pages(_tiff(1, (204, 196), (1728, 2200)), TIFF)
    standard, = images.load_image_pages(_tiff(1, (204, 98), (1728, 1100)), TIFF)
    assert standard.pixels.shape[0] == pytest.approx(2 * 1100 * 204 / 196, rel=0.01)  # rows doubled, at 204 dpi
    assert standard.dpi == 204 and standard.channel == "fax_standard" and fine.channel == "fax_fine"
    # both describe an A4-long page: height in inches about 11
    assert standard.pixels.shape[0] / standard.dpi == pytest.approx(fine.pixels.shape[0] / fine.dpi, rel=0.02)


def test_a_photo_is_turned_upright_by_its_exif_orientation() -> None:
    upright = np.full((40, 30), 255, np.uint8)
    upright[:5, :] = 0  # a dark band at the top of the upright photo
    stored = Image.fromarray(np.rot90(upright, k=1).copy())  # pixels stored turned, as phones do
    exif = Image.Exif()
    exif[274] = 6  # rotate 90° clockwise to show
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif, quality=95)
    page, = images.load_image_pages(buf.getvalue(), JPEG)
    assert page.pixels.shape == (40, 30) and page.channel == "photo"
    assert page.pixels[:5].mean() < 60 and page.pixels[-5:].mean() > 200


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_photo_is_turned_as_pillow_turns_it_for_every_exif_orientation(orientation: int) -> None:
    """Turned as a grey page (a third of the colour photo's memory): the same pixels as grey of the
    photo Pillow's exif_transpose turned, mirrored ones included."""
    from PIL import ImageOps

    rgb = np.random.default_rng(orientation).integers(0, 256, (48, 32, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[images.ORIENTATION] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "JPEG", exif=exif, quality=90)
    page, = images.load_image_pages(buf.getvalue(), JPEG)
    turned = ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue())))
    assert np.array_equal(page.pixels, images._pil_to_gray(turned))
    assert page.pixels.shape == ((32, 48) if orientation >= 5 else (48, 32)) and page.pixels.flags.c_contiguous


def test_a_colour_photo_becomes_the_same_grey_page_read_in_strips(monkeypatch: pytest.MonkeyPatch) -> None:
    """Converted a few rows at a time (a phone photo as floats at once is 146 MB), the page is the
    same to the last pixel, red seal ink kept dark."""
    monkeypatch.setattr(images, "GRAY_STRIP_ROWS", 64)
    rgb = np.random.default_rng(3).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    rgb[100:140, 50:90] = (200, 30, 30)  # a seal
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG")
    page, = images.load_image_pages(buf.getvalue(), PNG)
    floats = rgb.astype(np.float32)
    whole = np.clip(0.299 * floats[..., 0] + 0.587 * floats[..., 1] + 0.114 * floats[..., 2], 0, 255).astype(np.uint8)
    assert np.array_equal(page.pixels, whole)
    assert page.pixels[120, 70] < 100


def test_a_decompression_bomb_is_refused() -> None:
    buf = io.BytesIO()
    Image.new("1", (20000, 20000), 1).save(buf, "PNG")  # tiny file, 400 million pixels
    assert len(buf.getvalue()) < 200_000
    with pytest.raises(BrokenInput) as err:
        images.load_image_pages(buf.getvalue(), PNG)
    assert err.value.code == "too_large"


def test_too_many_pages_are_refused() -> None:
    with pytest.raises(BrokenInput, match="ページ数"):
        images.load_image_pages(_tiff(images.MAX_PAGES + 1, (204, 196), (200, 200)), TIFF)


def test_a_truncated_image_is_broken_not_a_crash() -> None:
    data = _tiff(2, (204, 196))
    with pytest.raises(BrokenInput):
        load_pages(data[: len(data) // 2], TIFF)
    with pytest.raises(BrokenInput):
        images.load_image_pages(b"\xff\xd8\xff\xe0" + b"\x00" * 50, JPEG)
