"""Synthetic sample images for the demo, tests and benchmarks (nothing binary in the repo).

Each draws what a vendor reads as a mark the simulator finds again in the pixels
(:mod:`worker.simulator.scene`):

- :func:`vehicle_photo`: a car (its badge: model and body colour) with a plate (its
  number and colour), or without one (``plate=False``);
- :func:`licence_page` / :func:`licence_pages`: a 行驶证 page, front (with its red seal)
  or back, or several side by side;
- :func:`everything`: a car with its plate beside a licence page, which every vendor
  reads (:func:`side_by_side` composes any of them);
- :func:`noise_jpeg`: a large photo-like JPEG with nothing in it.

Every drawing is deterministic per argument. Images that dictate the simulator's answer
come from :func:`worker.simulator.directives.make_image` and ``with_directive``.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from PIL import Image, ImageDraw

from worker.simulator import marks, scene
from worker.simulator.directives import encode, make_image

PAGE: Final = (214, 232, 218)  # the page's pale security-paper green
INK: Final = (40, 40, 40)


def plate_of(seed: int) -> str:
    """The plate number :func:`vehicle_photo` draws for ``seed`` by default: 粤B12345-like."""
    rng = random.Random(f"plate:{seed}")
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    tail = [rng.choice("0123456789") for _ in range(5)]
    if rng.random() < 0.3:
        tail[rng.randrange(5)] = rng.choice(letters)
    return rng.choice(scene.PROVINCES) + rng.choice(letters) + "".join(tail)


def _save(image: Image.Image, fmt: str) -> bytes:
    return encode(image, fmt) if fmt != "JPEG" else _jpeg(image)


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def vehicle_photo(
    seed: int,
    size: tuple[int, int] = (1024, 768),
    fmt: str = "JPEG",
    *,
    plate: str | bool = True,
    plate_color: str = "blue",
    plate_width: float = 0.25,
) -> bytes:
    """A deterministic picture of a car, different for each seed: its body colour and badge
    from ``seed``, its plate ``plate`` (True: :func:`plate_of(seed) <plate_of>`; False: no
    plate) in ``plate_color`` (blue, yellow, green), ``plate_width`` of the photo's width."""
    rng = random.Random(seed)
    w, h = size
    sky = (rng.randrange(190, 225), rng.randrange(205, 230), 232)
    img = Image.new("RGB", size, sky)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, h * 2 // 3, w, h), fill=(70, 70, 70))  # road
    color = rng.choice(list(scene.CAR_COLORS))
    x0, y0, x1, y1 = w // 8, h * 38 // 100, w * 7 // 8, h * 78 // 100
    draw.rounded_rectangle((x0, y0, x1, y1), radius=max(1, h // 12), fill=scene.CAR_COLORS[color])
    draw.rectangle((x0 + w // 8, y0 - h // 8, x1 - w // 8, y0), fill=(60, 70, 85))  # windows
    for cx in (x0 + w // 8, x1 - w // 8):
        r = h // 11
        draw.ellipse((cx - r, y1 - r, cx + r, y1 + r), fill=(20, 20, 20))
    badge = w / 7 / (scene.BADGE.cols + 2)
    bw, bh = marks.size_of(scene.BADGE, 3, badge)
    marks.draw(
        img,
        ((w - bw) / 2, y0 + h * 0.04),
        badge,
        scene.BADGE,
        scene.car_payload(rng.randrange(2**16), color),
    )
    if plate is not False:
        number = plate_of(seed) if plate is True else plate
        style = scene.PLATE_STYLES[plate_color]
        module = w * plate_width / (style.cols + 2)
        pw, ph = marks.size_of(style, style.length or 0, module)
        origin = ((w - pw) / 2, min(y1 - ph - h * 0.02, y0 + h * 0.04 + bh + h * 0.03))
        marks.draw(img, origin, module, style, scene.plate_payload(number))
    return _save(img, fmt)


def licence_pages(
    sides: Sequence[str],
    seed: int = 0,
    size: tuple[int, int] = (1000, 700),
    fmt: str = "JPEG",
) -> bytes:
    """行驶证 pages side by side on a desk, one per entry of ``sides`` (FRONT, BACK); page
    ``i`` is printed from ``seed + i``. FRONT pages carry the red seal."""
    w, h = size
    img = Image.new("RGB", size, (125, 112, 100))
    draw = ImageDraw.Draw(img)
    n = len(sides)
    slot = w / n
    for i, side in enumerate(sides):
        left, top = slot * i + slot * 0.04, h * 0.05
        right, bottom = slot * (i + 1) - slot * 0.04, h * 0.95
        _page(img, draw, (left, top, right, bottom), side, seed + i)
    return _save(img, fmt)


def licence_page(
    side: str = "FRONT", seed: int = 0, size: tuple[int, int] = (1000, 700), fmt: str = "JPEG"
) -> bytes:
    """One 行驶证 page filling most of the picture: ``side`` FRONT (主页, with its red seal)
    or BACK (副页), its fields printed from ``seed``."""
    return licence_pages([side], seed, size, fmt)


def _page(
    img: Image.Image,
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    side: str,
    seed: int,
) -> None:
    left, top, right, bottom = box
    pw, ph = right - left, bottom - top
    draw.rectangle(box, fill=PAGE, outline=(60, 110, 80), width=max(1, round(pw / 150)))
    draw.rectangle((left + pw * 0.25, top + ph * 0.05, right - pw * 0.25, top + ph * 0.1), fill=INK)
    rng = random.Random(f"page:{seed}")
    for row in range(7 if side == "FRONT" else 6):
        y = top + ph * (0.42 + row * 0.075)
        draw.rectangle((left + pw * 0.05, y, left + pw * 0.17, y + ph * 0.03), fill=(120, 120, 120))
        end = left + pw * rng.uniform(0.35, 0.6)
        draw.rectangle((left + pw * 0.2, y, end, y + ph * 0.03), fill=INK)
    if side == "FRONT":  # 主页: "有红色印章的一面"
        cx, cy, r = right - pw * 0.2, bottom - ph * 0.25, min(pw, ph) * 0.12
        draw.ellipse(
            (cx - r, cy - r, cx + r, cy + r), outline=(200, 40, 40), width=max(2, round(r / 8))
        )
    module = pw * 0.4 / (scene.LICENCE.cols + 2)
    mw, _mh = marks.size_of(scene.LICENCE, 5, module)
    marks.draw(
        img,
        (right - pw * 0.05 - mw, top + ph * 0.15),
        module,
        scene.LICENCE,
        scene.page_payload(side, seed),
    )


def side_by_side(*images: bytes, fmt: str = "JPEG") -> bytes:
    """Images pasted left to right on one canvas (as tall as the tallest)."""
    opened = [Image.open(io.BytesIO(data)).convert("RGB") for data in images]
    canvas = Image.new(
        "RGB", (sum(im.width for im in opened), max(im.height for im in opened)), (125, 112, 100)
    )
    x = 0
    for im in opened:
        canvas.paste(im, (x, 0))
        x += im.width
    return _save(canvas, fmt)


def everything(seed: int, size: tuple[int, int] = (1600, 700), fmt: str = "JPEG") -> bytes:
    """A car with its plate beside a licence front page: something every vendor reads."""
    half = (size[0] // 2, size[1])
    return side_by_side(vehicle_photo(seed, half), licence_page("FRONT", seed, half), fmt=fmt)


def noise_jpeg(size: tuple[int, int], quality: int = 95, seed: int = 0) -> bytes:
    """A large, hard-to-compress photo-like JPEG (for resizing and benchmarks)."""
    rng = random.Random(seed)
    img = Image.effect_noise(size, 60).convert("RGB")
    tint = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    Image.blend(img, tint, 0.4).save(out, "JPEG", quality=quality)
    return out.getvalue()


def write_demo_set(folder: Path) -> dict[str, str]:
    """The demo's images: good ones, some a vendor finds nothing in, and a few awkward
    ones. Returns name -> what it is."""
    folder.mkdir(parents=True, exist_ok=True)
    what: dict[str, str] = {}

    def put(name: str, data: bytes, description: str) -> None:
        (folder / name).write_bytes(data)
        what[name] = description

    for i in range(1, 5):
        put(f"car-{i}.jpg", vehicle_photo(i), f"a car with plate {plate_of(i)}")
    put("car-5.jpg", vehicle_photo(5, plate_color="yellow"), f"a car, yellow plate {plate_of(5)}")
    put("car-no-plate.jpg", vehicle_photo(6, plate=False), "a car without a plate")
    put("car-far.jpg", vehicle_photo(7, (800, 600), plate_width=0.05), "a plate too far to read")
    put("licence-front.jpg", licence_page("FRONT", 1), "a 行驶证 main page (FRONT)")
    put("licence-back.jpg", licence_page("BACK", 2), "a 行驶证 second page (BACK)")
    put("licence-small.jpg", licence_page("FRONT", 3, (400, 280)), "a licence below 500x800")
    put("big-photo.jpg", noise_jpeg((6000, 4000)), "24 MP of noise: resized, then nothing found")
    Image.new("RGB", (8, 8), "red").save(folder / "tiny.png")
    what["tiny.png"] = "8x8 pixels: too small"
    (folder / "notes.jpg").write_text("this is not an image, whatever its name says\n")
    what["notes.jpg"] = "text named .jpg"
    Image.new("1", (20_000, 10_000)).save(folder / "bomb.png")
    what["bomb.png"] = "200 megapixels in a small file: a decompression bomb"
    put("blank.png", make_image(size=(640, 480)), "a flat colour: nothing to read")
    return what
