"""worker.imaging: the generated corpus, the fitting rules, probe, threads, and properties."""

from __future__ import annotations

import base64
import io
import random
import re
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from tests.worker.imaging_corpus import CORPUS, JPB, VENDORS, Case, encode, photo, with_exif
from worker.errors import InvalidImage
from worker.image_limits import ImageLimits, PreparedImage
from worker.imaging import b64_length, fit_size, prepare, probe
from worker.imaging.strip import strip


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


@pytest.mark.parametrize("vendor", sorted(VENDORS))
@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_corpus_case_reaches_a_specific_terminal_state(case: Case, vendor: str) -> None:
    limits = VENDORS[vendor]
    data = corpus_bytes(case.name)
    reason = case.reason(vendor)
    if reason is not None:
        with pytest.raises(InvalidImage) as info:
            prepare(data, limits)
        assert type(info.value) is InvalidImage
        assert re.search(reason, info.value.message), info.value.message
        return
    prepared = prepare(data, limits)
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


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    ramp = Image.linear_gradient("L").resize((64, 256)).convert("I")  # 0 at top, 255 below
    data = encode(ramp.point(lambda v: v * 257).convert("I;16"), "PNG")
    out = assert_within(prepare(data, JUHE), JUHE).convert("L")
    assert out.getpixel((10, 250)) > 230  # type: ignore[operator]
    assert 100 < out.getpixel((10, 128)) < 160  # type: ignore[operator]


def test_oversized_jpeg_is_shrunk_with_dct_scaling_when_close_enough() -> None:
    data = encode(photo((6000, 4000)), "JPEG", quality=85)
    out = prepare(data, JUHE)
    assert_within(out, JUHE)
    # 1/2 DCT scale lands within half an octave of 4096: taken as is (see imaging.py).
    assert (out.width, out.height) == (3000, 2000)


def test_oversized_jpeg_is_resampled_to_the_exact_fit_otherwise() -> None:
    data = encode(photo((5000, 3000)), "JPEG", quality=85)
    out = prepare(data, JUHE)
    assert_within(out, JUHE)
    assert (out.width, out.height) == (4096, 2458)


def test_png_is_reduced_then_resampled() -> None:
    data = encode(photo((2000, 1000)), "PNG")
    limits = ImageLimits(JPB, 4_000_000, max_side=900)
    out = prepare(data, limits)
    assert_within(out, limits)
    assert (out.width, out.height) == (900, 450)


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
