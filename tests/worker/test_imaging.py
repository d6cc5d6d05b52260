"""worker.imaging: the generated corpus, the fitting rules, orientation and metadata,
probe, the decode budget, threads, and properties."""

from __future__ import annotations

import base64
import io
import platform
import random
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageOps, PngImagePlugin

from tests.worker.imaging_corpus import (
    CORPUS,
    JPB,
    VENDORS,
    Case,
    cut_with_end_marker,
    encode,
    jpeg_with_size,
    mpo,
    photo,
    quadrants,
    with_exif,
)
from worker.config import FitMode
from worker.errors import InvalidImage
from worker.image_limits import ImageLimits, PreparedImage
from worker.imaging import DecodeBudget, b64_length, fit_size, jpeg, prepare, probe, vips
from worker.imaging.budget import process_budget, return_freed_memory
from worker.imaging.fit import resize
from worker.imaging.strip import strip
from worker.providers.base import fit_of
from worker.providers.registry import get_provider, names
from worker.settings import build_settings, settings_class
from worker.simulator.directives import read_directive, with_directive
from worker.simulator.scene import Scene, Unreadable, look

FITS: list[FitMode] = ["fast", "exact"]
# The three ways an oversized image is fitted: keyword arguments of prepare().
BACKENDS: dict[str, dict[str, Any]] = {
    "fast": {"fit": "fast"},
    "exact-pillow": {"fit": "exact", "use_vips": False},
    "exact-vips": {"fit": "exact", "use_vips": True},
}


@cache
def corpus_bytes(name: str) -> bytes:
    return next(c for c in CORPUS if c.name == name).make()


def assert_within(prepared: PreparedImage, limits: ImageLimits) -> Image.Image:
    """The fitted result obeys every limit, and says truthfully what it is."""
    assert prepared.b64 == base64.b64encode(prepared.data)
    assert len(prepared.b64) == b64_length(len(prepared.data)) <= limits.max_b64_bytes
    assert prepared.format in limits.formats
    with Image.open(io.BytesIO(prepared.data)) as im:
        im.load()
        assert im.format == prepared.format
        assert im.size == (prepared.width, prepared.height)
        w, h = im.size
        assert min(w, h) >= limits.min_side
        if limits.max_side is not None:
            assert max(w, h) <= limits.max_side
        if limits.max_pixels is not None:
            assert w * h <= limits.max_pixels
        return im.copy()


def test_corpus_is_large_and_unique() -> None:
    assert len(CORPUS) >= 30
    assert len({c.name for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize("vendor", sorted(VENDORS))
@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_corpus_case_reaches_a_specific_terminal_state(
    case: Case, vendor: str, fit: FitMode
) -> None:
    limits = VENDORS[vendor]
    data = corpus_bytes(case.name)
    reason = case.reason(vendor)
    if reason is not None:
        with pytest.raises(InvalidImage) as info:
            prepare(data, limits, fit)
        assert type(info.value) is InvalidImage
        assert re.search(reason, info.value.message), info.value.message
        return
    prepared = prepare(data, limits, fit)
    assert_within(prepared, limits)
    if case.untouched is True:  # the very bytes, less their metadata
        assert prepared.data == strip(data)
        assert not prepared.transformed
    elif case.untouched is False:
        assert prepared.transformed
        assert prepared.format == "JPEG"
        assert prepared.data != data
    if case.size is not None:
        assert (prepared.width, prepared.height) == case.size
    if case.warning is not None:
        assert any(case.warning in w for w in prepared.warnings), prepared.warnings


# ---- the fitting rules --------------------------------------------------------------

JUHE = VENDORS["juhe_car"]


def test_alpha_is_flattened_onto_white() -> None:
    out = assert_within(prepare(corpus_bytes("RGBA PNG"), JUHE), JUHE).convert("RGB")
    r, g, b = out.getpixel((2, 2))  # type: ignore[misc]
    assert min(r, g, b) > 245  # transparent black became white, not black
    r, g, b = out.getpixel((60, 40))  # type: ignore[misc]
    assert b > 150 > r


def test_exif_rotation_is_applied_to_the_pixels() -> None:
    im = Image.new("RGB", (400, 200), "white")
    im.paste((255, 0, 0), (0, 0, 100, 200))  # red band on the left of the stored image
    out = prepare(with_exif(im, 6), JUHE)  # 6: display rotated 90 degrees clockwise
    pixels = assert_within(out, JUHE)
    assert pixels.size == (200, 400)
    r, g, _ = pixels.getpixel((100, 20))  # type: ignore[misc]
    assert r > 200 > g  # the band is now along the top


# ---- orientation, per format and per EXIF orientation ------------------------------

ORIENTED_FORMATS = ["JPEG", "PNG", "WEBP", "TIFF"]  # the formats Pillow stores EXIF in
SHRUNK = ImageLimits(JPB, 4_000_000, max_side=60)  # a resample as well as the rotation


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ORIENTED_FORMATS)
def test_orientation_is_applied_exactly_once(fmt: str, orientation: int) -> None:
    data = with_exif(quadrants(), orientation, fmt)
    with Image.open(io.BytesIO(data)) as stored:
        upright = ImageOps.exif_transpose(stored).convert("RGB")  # what a viewer shows
    for limits in (JUHE, SHRUNK):
        for backend, kwargs in BACKENDS.items():
            out = assert_within(prepare(data, limits, **kwargs), limits).convert("RGB")
            assert out.size == fit_size(*upright.size, limits), (limits, backend)
            expected = upright.resize(out.size)
            w, h = out.size
            for x, y in ((w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4)):
                got, want = out.getpixel((x, y)), expected.getpixel((x, y))
                assert isinstance(got, tuple)
                assert isinstance(want, tuple)
                assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 60, (
                    limits,
                    backend,
                    (x, y),
                )


def test_a_rotated_image_is_never_sent_untouched() -> None:
    for fmt in ("JPEG", "PNG"):
        out = prepare(with_exif(quadrants(), 3, fmt), JUHE)
        assert out.transformed  # upright pixels, and no EXIF left to rotate them again


# ---- metadata: a re-encoded image carries only its pixels ---------------------------


def _sources_with_metadata() -> dict[str, bytes]:
    long_comment = "c" * 70_000  # over a JPEG COM segment's 64 KB: made the encode fail
    text = PngImagePlugin.PngInfo()
    text.add_text("comment", long_comment)
    text.add_itxt("Description", "notes " * 100)
    wide = photo((5000, 300))  # resampled for Juhe: Pillow copies info along the way
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "CameraMaker"
    big_jpeg = encode(
        photo((5000, 3000)),
        "JPEG",
        exif=exif.tobytes(),
        icc_profile=b"\0" * 300,
        comment=b"a comment " * 100,
    )
    return {
        "PNG with a 70 KB comment": encode(wide, "PNG", pnginfo=text, icc_profile=b"\0" * 300),
        "GIF with a 70 KB comment": encode(photo((300, 200), "P"), "GIF", comment=long_comment),
        "WebP with EXIF and ICC": encode(
            photo((300, 200)), "WEBP", exif=exif.tobytes(), icc_profile=b"\0" * 300
        ),
        "rotated JPEG with EXIF, ICC and a comment": big_jpeg,
    }


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", sorted(_sources_with_metadata()))
def test_reencoded_image_carries_only_pixels(name: str, backend: str) -> None:
    data = _sources_with_metadata()[name]
    out = prepare(data, JUHE, **BACKENDS[backend])
    assert out.transformed
    assert out.format == "JPEG"
    kept = {marker for marker, _, _ in jpeg.segments(out.data)}
    # SOI, quantisation and Huffman tables, frame, scan, EOI, and JFIF's APP0 (Pillow
    # writes one, libvips not): nothing else.
    assert (
        {0xD8, 0xDB, 0xC4, 0xC0, 0xDA, 0xD9} <= kept <= {0xD8, 0xE0, 0xDB, 0xC4, 0xC0, 0xDA, 0xD9}
    )
    with Image.open(io.BytesIO(out.data)) as im:
        assert not {"exif", "icc_profile", "comment", "Description"} & set(im.info)


def test_an_image_sent_untouched_keeps_its_pixels_and_directive() -> None:
    data = with_directive(encode(photo((640, 480)), "JPEG"), {"plate": "A12345"})
    out = prepare(data, JUHE)
    assert not out.transformed
    assert out.data == strip(data)
    assert read_directive(out.data).fields == {"plate": "A12345"}


# ---- JPEGs whose data ends before their pixels do --------------------------------


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize(
    "make",
    [
        lambda: cut_with_end_marker(encode(photo((5000, 3000)), "JPEG"), 0.5),
        lambda: jpeg_with_size(8000, 6000),
    ],
    ids=["cut, end marker appended", "header claims 8000x6000"],
)
def test_short_jpeg_data_is_refused_on_the_resampling_paths(
    make: Callable[[], bytes], backend: str
) -> None:
    with pytest.raises(InvalidImage, match=r"^truncated JPEG: its data ends before its"):
        prepare(make(), JUHE, **BACKENDS[backend])


@pytest.mark.parametrize(
    "picture",
    [
        Image.new("RGB", (800, 600), (128, 128, 128)),  # what a cut leaves, but complete
        ImageOps.expand(photo((800, 500)), (0, 0, 0, 100)),  # a black band at the bottom
    ],
    ids=["flat mid-grey", "uniform last rows"],
)
def test_complete_jpegs_with_flat_last_rows_are_accepted(picture: Image.Image) -> None:
    data = encode(picture, "JPEG")
    for vendor in ("juhe_car", "tianapi_plate"):
        assert not prepare(data, VENDORS[vendor]).transformed
    big = encode(picture.resize((8000, 6000)), "JPEG")
    for kwargs in BACKENDS.values():
        assert prepare(big, JUHE, **kwargs).transformed


# ---- multi-picture JPEG ------------------------------------------------------------


def test_mpo_is_sent_as_its_first_picture_a_plain_jpeg() -> None:
    first, second = photo((400, 300)), photo((400, 300), seed=7)
    data = mpo(first, second)
    assert look(data) is Unreadable.FORMAT  # the simulator refuses MPO
    for vendor, limits in VENDORS.items():
        out = assert_within(prepare(data, limits), limits)
        seen = look(prepare(data, limits).data)
        assert isinstance(seen, Scene), vendor
        assert (seen.format, seen.width, seen.height) == ("JPEG", 400, 300), vendor
        assert getattr(out, "n_frames", 1) == 1
        with Image.open(io.BytesIO(data)) as original:
            expected = original.convert("RGB")
        assert out.convert("RGB").tobytes() == expected.tobytes()  # its bytes, not re-encoded


def test_mpo_larger_than_the_limits_is_fitted_from_its_first_picture() -> None:
    data = mpo(photo((5000, 3000)), Image.new("RGB", (5000, 3000), "black"))
    for kwargs in BACKENDS.values():
        out = prepare(data, JUHE, **kwargs)
        pixels = assert_within(out, JUHE).convert("L")
        assert pixels.getextrema() != (0, 0)  # not the second, black, picture
        assert out.warnings[0] == "multi-picture JPEG (MPO): its first picture sent"


def test_first_picture_of_a_plain_jpeg_is_itself() -> None:
    data = encode(photo((64, 48)), "JPEG")
    assert jpeg.first_picture(data) == data


def _over_white(im: Image.Image) -> Image.Image:
    """The reference flattening: RGBA composited over white, the whole image at once."""
    rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")


def test_palette_transparency_is_flattened_through_the_palette() -> None:
    im = Image.new("P", (90, 60), 0)
    im.putpalette([255, 0, 0, 0, 0, 255, 0, 200, 0] + [0] * 759)
    im.paste(1, (30, 0, 60, 60))
    im.paste(2, (60, 0, 90, 60))
    for transparency in (0, bytes([0, 128, 255])):  # one transparent entry, or an alpha each
        data = encode(im, "PNG", transparency=transparency)
        with Image.open(io.BytesIO(data)) as stored:
            expected = _over_white(stored)
        out = assert_within(prepare(data, JUHE), JUHE).convert("RGB")
        for x in (15, 45, 75):
            got, want = out.getpixel((x, 30)), expected.getpixel((x, 30))
            assert isinstance(got, tuple)
            assert isinstance(want, tuple)
            assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 12, (x, got, want)


def test_grey_with_alpha_is_flattened_onto_white() -> None:
    im = Image.new("LA", (80, 40), (0, 0))  # transparent black: must become white
    im.paste((0, 255), (40, 0, 80, 40))  # opaque black on the right
    out = assert_within(prepare(encode(im, "PNG"), JUHE), JUHE).convert("L")
    assert out.getpixel((10, 20)) > 245  # type: ignore[operator]
    assert out.getpixel((70, 20)) < 10  # type: ignore[operator]


def test_float_grey_is_stretched_over_every_band_of_rows_alike() -> None:
    im = Image.linear_gradient("L").resize((40, 1000)).convert("F")  # more rows than a band
    data = encode(im.point(lambda v: v * 10 - 500), "TIFF")
    out = assert_within(prepare(data, JUHE), JUHE).convert("L")
    column = [int(out.getpixel((20, y))) for y in range(0, 1000, 50)]  # type: ignore[arg-type]
    assert column[0] < 10
    assert column[-1] > 240
    assert column == sorted(column)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    ramp = Image.linear_gradient("L").resize((64, 256)).convert("I")  # 0 at top, 255 below
    data = encode(ramp.point(lambda v: v * 257).convert("I;16"), "PNG")
    out = assert_within(prepare(data, JUHE), JUHE).convert("L")
    assert out.getpixel((10, 250)) > 230  # type: ignore[operator]
    assert 100 < out.getpixel((10, 128)) < 160  # type: ignore[operator]


@cache
def photo_24mp() -> bytes:
    return encode(photo((6000, 4000)), "JPEG", quality=85)


def test_fast_takes_a_dct_scale_within_half_an_octave() -> None:
    out = prepare(photo_24mp(), JUHE, "fast")
    assert_within(out, JUHE)
    # 1/2 DCT scale lands within half an octave of 4096: taken as is (see fit.py).
    assert (out.width, out.height) == (3000, 2000)


@pytest.mark.parametrize("use_vips", [False, True], ids=["pillow", "vips"])
def test_exact_gives_the_full_allowed_size(use_vips: bool) -> None:
    out = prepare(photo_24mp(), JUHE, "exact", use_vips=use_vips)
    assert_within(out, JUHE)
    assert (out.width, out.height) == (4096, 2731)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_oversized_jpeg_is_resampled_to_the_exact_fit_when_no_scale_is_near(
    backend: str,
) -> None:
    data = encode(photo((5000, 3000)), "JPEG", quality=85)
    out = prepare(data, JUHE, **BACKENDS[backend])
    assert_within(out, JUHE)
    assert (out.width, out.height) == (4096, 2458)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_png_is_resampled_to_the_exact_fit(backend: str) -> None:
    data = encode(photo((2000, 1000)), "PNG")
    limits = ImageLimits(JPB, 4_000_000, max_side=900)
    out = prepare(data, limits, **BACKENDS[backend])
    assert_within(out, limits)
    assert (out.width, out.height) == (900, 450)


def test_fast_and_exact_differ_only_where_a_side_limit_shrinks() -> None:
    # No vendor but Juhe limits sides: elsewhere only the byte budget shrinks, alike.
    data = encode(photo((3000, 2000)), "PNG")
    tianapi = VENDORS["tianapi_plate"]
    assert prepare(data, tianapi, "fast").data == prepare(data, tianapi, "exact").data


def test_two_pass_resize_matches_pillows_own() -> None:
    im = photo((1000, 700))
    expected = im.resize((683, 478), Image.Resampling.LANCZOS)
    assert resize(im.copy(), (683, 478), 3.0).tobytes() == expected.tobytes()


def test_vips_is_installed_for_the_tests() -> None:
    assert vips.available()  # pyvips[binary] is a dev dependency: both paths are tested


def _has_jfif(data: bytes) -> bool:
    return any(marker == 0xE0 for marker, _, _ in jpeg.segments(data))


def test_exact_takes_the_vips_path_for_a_clean_jpeg() -> None:
    data = encode(photo((5000, 3000)), "JPEG", quality=85)
    assert not _has_jfif(prepare(data, JUHE, "exact", use_vips=True).data)  # libvips wrote it
    assert _has_jfif(prepare(data, JUHE, "exact", use_vips=False).data)  # Pillow wrote it


def test_a_vendor_without_jpeg_gets_its_own_format_from_exact_too() -> None:
    limits = ImageLimits(frozenset({"PNG"}), 4_000_000, max_side=300)
    out = prepare(encode(photo((600, 400)), "JPEG"), limits, "exact", use_vips=True)
    assert_within(out, limits)
    assert (out.format, out.width, out.height) == ("PNG", 300, 200)


def test_a_jpeg_libvips_warns_about_is_fitted_the_pillow_way() -> None:
    data = encode(photo((5000, 3000)), "JPEG", quality=85)
    sos = next(start for marker, start, _ in jpeg.segments(data) if marker == 0xDA)
    untidy = data[:sos] + b"\x00\x00" + data[sos:]  # libjpeg: "2 extraneous bytes before"
    out = prepare(untidy, JUHE, "exact", use_vips=True)
    assert (out.width, out.height) == (4096, 2458)
    assert _has_jfif(out.data)


@pytest.mark.parametrize("name", names())
def test_every_provider_declares_a_fit_and_the_setting_overrides_it(name: str) -> None:
    provider = get_provider(name, build_settings())
    assert fit_of(provider) == provider.fit in ("fast", "exact")
    other: FitMode = "fast" if provider.fit == "exact" else "exact"
    block = {name: {"fit": other}}
    assert fit_of(get_provider(name, settings_class().model_validate(block))) == other


def test_plate_and_licence_readers_default_to_exact() -> None:
    fits = {name: get_provider(name, build_settings()).fit for name in names()}
    assert fits == {
        "tencent_vehicle_license": "exact",
        "tianapi_plate": "exact",
        "aliyun_plate": "exact",
        "juhe_car": "fast",
        "juhe_plate": "exact",
    }


def test_fit_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VREC_JUHE_CAR__FIT", "exact")
    assert build_settings().provider("juhe_car").fit == "exact"
    monkeypatch.setenv("VREC_JUHE_CAR__FIT", "sloppy")
    with pytest.raises(ValueError, match="fit"):
        build_settings()


def test_max_pixels_is_respected() -> None:
    limits = ImageLimits(JPB, 4_000_000, max_pixels=1_000_000)
    out = prepare(encode(photo((2400, 1800)), "JPEG"), limits)
    assert_within(out, limits)
    assert out.width * out.height > 700_000  # not needlessly small


def test_byte_budget_searches_quality_then_scales() -> None:
    data = encode(Image.effect_noise((800, 600), 100).convert("RGB"), "PNG")
    limits = ImageLimits(JPB, 60_000, min_side=15)
    out = prepare(data, limits)
    assert_within(out, limits)
    assert any("byte budget" in w for w in out.warnings)


def _flat_car(w: int, h: int, seed: int = 3) -> Image.Image:
    """A flat, very compressible cartoon of a car: big areas of one colour, a little text."""
    rng = random.Random(seed)
    img = Image.new("RGB", (w, h), (rng.randrange(90, 200), rng.randrange(120, 220), 235))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, h * 2 // 3, w, h), fill=(70, 70, 70))
    body = (rng.randrange(0, 255), rng.randrange(0, 255), rng.randrange(0, 255))
    x0, y0, x1, y1 = w // 6, h // 3, w * 5 // 6, h * 3 // 4
    draw.rounded_rectangle((x0, y0, x1, y1), radius=h // 12, fill=body)
    draw.rectangle((x0 + w // 10, y0 - h // 8, x1 - w // 10, y0), fill=(40, 60, 90))
    for cx in (x0 + w // 8, x1 - w // 8):
        draw.ellipse((cx - h // 12, y1 - h // 12, cx + h // 12, y1 + h // 12), fill=(20, 20, 20))
    px0, py0 = w // 2 - w // 12, y1 - h // 9
    draw.rectangle((px0, py0, px0 + w // 6, py0 + h // 20), fill=(20, 60, 200), outline="white")
    draw.text((px0 + 6, py0 + 4), f"A{seed:05d}", fill="white")
    return Image.open(io.BytesIO(encode(img, "JPEG", quality=90)))


def test_a_fit_well_under_the_budget_is_searched_upwards() -> None:
    # A flat, very compressible picture: lowering the quality saves little, so it is
    # scaled down, and the size model then overshoots (it landed at 0.71 of the budget).
    image = _flat_car(1600, 1200)
    q90 = len(encode(image, "JPEG", quality=90, subsampling="4:2:0"))
    limits = ImageLimits(JPB, b64_length(q90 * 3 // 4), min_side=15)
    out = prepare(encode(image, "PNG"), limits)
    assert_within(out, limits)
    assert any("byte budget" in w for w in out.warnings)
    assert len(out.b64) >= 0.85 * limits.max_b64_bytes


def test_impossible_budget_is_a_specific_invalid_image() -> None:
    data = encode(Image.effect_noise((200, 200), 100).convert("RGB"), "PNG")
    with pytest.raises(InvalidImage, match=r"^cannot fit within 300 bytes of base64"):
        prepare(data, ImageLimits(JPB, 300, min_side=100))


def test_too_big_for_the_budget_untouched_file_is_reencoded() -> None:
    data = encode(Image.effect_noise((900, 700), 100).convert("RGB"), "BMP")  # ~1.9 MB
    limits = ImageLimits(JPB, 1_000_000)
    out = prepare(data, limits)
    assert_within(out, limits)
    assert out.transformed
    assert (out.width, out.height) == (900, 700)  # quality, not size, paid for it


def test_recommended_minimum_gives_a_warning_not_a_failure() -> None:
    out = prepare(encode(photo((400, 300)), "JPEG"), VENDORS["tencent_vehicle_license"])
    assert not out.transformed
    assert out.warnings == ("400x300 is below the recommended 500x800",)


def test_png_only_vendor_gets_png() -> None:
    limits = ImageLimits(frozenset({"PNG"}), 4_000_000)
    out = prepare(encode(photo((300, 200)), "WEBP"), limits)
    assert_within(out, limits)
    assert out.format == "PNG"


def test_fit_size_rounds_to_the_limit() -> None:
    assert fit_size(6000, 4000, JUHE) == (4096, 2731)
    assert fit_size(4000, 6000, JUHE) == (2731, 4096)
    assert fit_size(100, 50, JUHE) == (100, 50)
    w, h = fit_size(3001, 2999, ImageLimits(JPB, 1, max_pixels=1_000_000))
    assert w * h <= 1_000_000


def test_pillow_global_limit_is_left_alone() -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(InvalidImage, match="decompression bomb"):
        prepare(corpus_bytes("huge PNG header, tiny file"), JUHE)
    assert Image.MAX_IMAGE_PIXELS == before == 89_478_485


# ---- probe ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("baseline JPEG", ("JPEG", 640, 480)),
        ("BMP 24-bit", ("BMP", 300, 200)),
        ("animated GIF", ("GIF", 80, 60)),
        ("WebP", ("WEBP", 200, 100)),
        ("TIFF LZW", ("TIFF", 200, 100)),
        ("EXIF rotate 90 (6)", ("JPEG", 200, 400)),  # display orientation
        ("TIFF with EXIF rotate 90 (6)", ("TIFF", 200, 400)),  # Pillow's TIFF: upright already
        ("huge PNG header, tiny file", ("PNG", 40_000, 40_000)),  # a header read, no decode
        ("truncated JPEG", ("JPEG", 640, 480)),
    ],
)
def test_probe_reads_headers(name: str, expected: tuple[str, int, int]) -> None:
    info = probe(corpus_bytes(name))
    assert info is not None
    assert (info.format, info.width, info.height) == expected


@pytest.mark.parametrize(
    "name", ["zero bytes", "text named .jpg", "EPS renamed .jpg", "PSD renamed .jpg", "AVIF"]
)
def test_probe_returns_none_for_what_we_do_not_accept(name: str) -> None:
    assert probe(corpus_bytes(name)) is None


def test_probe_never_raises_on_corpus() -> None:
    for case in CORPUS:
        probe(corpus_bytes(case.name))


# ---- the decode budget ---------------------------------------------------------------


def _wait_until(condition: Callable[[], bool]) -> None:
    """Spin until ``condition`` (no timing in the assertion; pytest's timeout bounds it)."""
    event = threading.Event()
    while not condition():
        event.wait(0.001)


def test_a_claim_waits_for_room_and_runs_when_it_is_released() -> None:
    budget = DecodeBudget(100)
    entered = threading.Event()
    with budget.claim(60):

        def second() -> None:
            with budget.claim(60):
                entered.set()

        thread = threading.Thread(target=second)
        thread.start()
        _wait_until(lambda: budget.waiting == 1)
        assert not entered.is_set()  # 60 + 60 > 100: it waits, it does not fail
        assert budget.in_use == 60
    thread.join()
    assert entered.is_set()
    assert (budget.in_use, budget.peak_in_use, budget.peak_holders) == (0, 60, 1)


def test_claims_that_fit_together_run_together() -> None:
    budget = DecodeBudget(100)
    inside = threading.Barrier(3)  # passes only if all three hold their claim at once

    def claim() -> None:
        with budget.claim(30):
            inside.wait()

    threads = [threading.Thread(target=claim) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (budget.peak_in_use, budget.peak_holders, budget.in_use) == (90, 3, 0)


def test_a_claim_larger_than_the_budget_runs_alone() -> None:
    budget = DecodeBudget(100)
    order: list[str] = []
    with budget.claim(10):
        done = threading.Event()

        def huge() -> None:
            with budget.claim(500):
                order.append("huge")
                assert budget.in_use == 500  # nothing else in progress
            done.set()

        thread = threading.Thread(target=huge)
        thread.start()
        _wait_until(lambda: budget.waiting == 1)
        order.append("small released")
    thread.join()
    assert done.is_set()
    assert order == ["small released", "huge"]


def test_claims_are_served_in_arrival_order() -> None:
    budget = DecodeBudget(100)
    order: list[int] = []
    threads = []
    with budget.claim(100):
        for size in (90, 5, 5):  # the small ones would fit beside the 90, but queue behind it

            def claim(size: int = size) -> None:
                with budget.claim(size):
                    order.append(size)

            threads.append(threading.Thread(target=claim))
            threads[-1].start()
            queued = len(threads)
            _wait_until(lambda: budget.waiting == queued)  # noqa: B023 - used at once
    for thread in threads:
        thread.join()
    assert order[0] == 90


def test_prepare_claims_the_pixels_of_the_image_and_gives_them_back() -> None:
    budget = DecodeBudget(10**9)
    prepare(photo_24mp(), JUHE, budget=budget)
    assert (budget.peak_in_use, budget.in_use) == (6000 * 4000, 0)
    with pytest.raises(InvalidImage):
        prepare(cut_with_end_marker(photo_24mp(), 0.5), JUHE, budget=budget)
    assert budget.in_use == 0


@pytest.mark.parametrize(
    ("make", "weight"),
    [
        (lambda: encode(photo((300, 200)), "JPEG"), 1.0),
        (lambda: encode(photo((300, 200)), "PNG"), 1.0),
        (lambda: encode(photo((300, 200)), "JPEG", progressive=True), 1.5),  # coefficients
        (lambda: encode(photo((300, 200)), "WEBP"), 2.0),  # libwebp's canvases
    ],
    ids=["baseline JPEG", "PNG", "progressive JPEG", "WebP"],
)
def test_decoders_that_hold_more_claim_more(make: Callable[[], bytes], weight: float) -> None:
    budget = DecodeBudget(10**9)
    prepare(make(), JUHE, budget=budget)
    assert budget.peak_in_use == int(300 * 200 * weight)


def test_threads_preparing_large_images_wait_for_the_budget() -> None:
    image = encode(Image.new("1", (4000, 3000)), "PNG")  # 12 MP from a few KB
    budget = DecodeBudget(2 * 4000 * 3000)  # room for two at a time
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: prepare(image, JUHE, budget=budget).width, range(16)))
    assert results == [4000] * 16  # every one done, none failed for room
    assert budget.peak_holders <= 2
    assert budget.peak_in_use <= 2 * 4000 * 3000
    assert budget.in_use == 0


def test_the_process_budget_returns_freed_pixel_memory_on_glibc() -> None:
    assert process_budget().pixels == build_settings().decode_budget_pixels == 89_478_485
    # Without it glibc's thread arenas keep every freed block (bench/memory.py: 5.4 GB).
    assert return_freed_memory() is (platform.libc_ver()[0] == "glibc")


# ---- concurrency ------------------------------------------------------------------


def _outcome(data: bytes, limits: ImageLimits) -> tuple[str, bytes | str]:
    try:
        out = prepare(data, limits)
    except InvalidImage as exc:
        return "invalid", exc.message
    return "ok", out.data


def test_concurrent_calls_match_serial_ones() -> None:
    names = [c.name for c in CORPUS if "bomb" not in c.name]
    jobs = [(corpus_bytes(n), limits) for n in names for limits in VENDORS.values()]
    serial = [_outcome(d, lim) for d, lim in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda job: _outcome(*job), jobs))
    assert threaded == serial


# ---- properties ---------------------------------------------------------------------

MODES = {
    "JPEG": ["RGB", "L", "CMYK"],
    "PNG": ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"],
    "BMP": ["RGB", "L", "P", "1"],
    "GIF": ["P", "L"],
    "TIFF": ["RGB", "CMYK", "L", "RGBA", "F"],
    "WEBP": ["RGB", "RGBA"],
}


@st.composite
def images(draw: st.DrawFn) -> bytes:
    fmt = draw(st.sampled_from(sorted(MODES)))
    mode = draw(st.sampled_from(MODES[fmt]))
    size = (draw(st.integers(1, 700)), draw(st.integers(1, 700)))
    content = draw(st.sampled_from(["flat", "photo", "noise"]))
    if content == "noise":
        im = Image.effect_noise(size, draw(st.integers(1, 120))).convert(mode)
    elif content == "photo":
        im = photo(size, "RGB", draw(st.integers(0, 50))).convert(mode)
    else:
        im = Image.new("RGB", size, draw(st.tuples(*[st.integers(0, 255)] * 3))).convert(mode)
    if fmt == "JPEG" and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(1, 8))
        return encode(im, fmt, exif=exif.tobytes(), quality=draw(st.integers(30, 100)))
    return encode(im, fmt)


limits_strategy = st.builds(
    ImageLimits,
    formats=st.sampled_from([JPB, frozenset({"JPEG"}), frozenset({"PNG"}), frozenset({"BMP"})]),
    max_b64_bytes=st.integers(2_000, 2_000_000),
    min_side=st.integers(1, 64),
    max_side=st.none() | st.integers(64, 1000),
    max_pixels=st.none() | st.integers(10_000, 500_000),
)


def _fitted_or_reason(data: bytes, limits: ImageLimits) -> PreparedImage | str:
    """A result checked against ``limits``, or the InvalidImage message. Nothing else."""
    try:
        out = prepare(data, limits)
    except InvalidImage as exc:
        return exc.message
    assert_within(out, limits)
    return out


PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(data=images())
def test_any_image_fits_every_vendor_or_is_invalid(data: bytes) -> None:
    for limits in VENDORS.values():
        out = _fitted_or_reason(data, limits)
        if isinstance(out, str):
            assert re.match(r"(image too small|cannot fit)", out), out
            continue
        if not out.transformed:
            assert out.data == strip(data)


@PROPERTY
@given(data=images(), limits=limits_strategy)
def test_any_image_fits_any_limits_or_is_invalid(data: bytes, limits: ImageLimits) -> None:
    out = _fitted_or_reason(data, limits)
    if isinstance(out, str):
        assert re.match(r"(image too small|cannot fit)", out), out


@PROPERTY
@given(
    data=images(),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=6),
)
def test_damaged_bytes_never_crash(data: bytes, cut: float, flips: list[tuple[float, int]]) -> None:
    damaged = bytearray(data[: max(0, int(len(data) * cut))] if cut < 0.97 else data)
    for where, xor in flips:
        if damaged:
            damaged[int(where * (len(damaged) - 1))] ^= xor
    probe(bytes(damaged))
    for limits in VENDORS.values():
        out = _fitted_or_reason(bytes(damaged), limits)
        assert not isinstance(out, str) or out  # a non-empty reason, or checked limits
