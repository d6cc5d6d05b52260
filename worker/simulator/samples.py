"""Synthetic sample images for the demo, tests and benchmarks (nothing binary in the repo).

``vehicle_photo`` draws a car-ish scene with a plate. Images that dictate the simulator's
answer come from :func:`worker.simulator.directives.make_image`.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

from worker.simulator.directives import make_image


def vehicle_photo(seed: int, size: tuple[int, int] = (1024, 768), fmt: str = "JPEG") -> bytes:
    """A deterministic picture of a car with a blue plate, different for each seed."""
    rng = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size, (rng.randrange(90, 200), rng.randrange(120, 220), 235))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, h * 2 // 3, w, h), fill=(70, 70, 70))  # road
    body = tuple(rng.randrange(0, 255) for _ in range(3))
    x0, y0, x1, y1 = w // 6, h // 3, w * 5 // 6, h * 3 // 4
    draw.rounded_rectangle((x0, y0, x1, y1), radius=h // 12, fill=body)
    draw.rectangle((x0 + w // 10, y0 - h // 8, x1 - w // 10, y0), fill=(40, 60, 90))
    for cx in (x0 + w // 8, x1 - w // 8):
        draw.ellipse((cx - h // 12, y1 - h // 12, cx + h // 12, y1 + h // 12), fill=(20, 20, 20))
    px0, py0 = w // 2 - w // 12, y1 - h // 9
    draw.rectangle((px0, py0, px0 + w // 6, py0 + h // 20), fill=(20, 60, 200), outline="white")
    draw.text((px0 + 6, py0 + 4), f"A{seed:05d}", fill="white")
    out = io.BytesIO()
    img.save(out, fmt, quality=90) if fmt == "JPEG" else img.save(out, fmt)
    return out.getvalue()


def noise_jpeg(size: tuple[int, int], quality: int = 95, seed: int = 0) -> bytes:
    """A large, hard-to-compress photo-like JPEG (for resizing and benchmarks)."""
    rng = random.Random(seed)
    img = Image.effect_noise(size, 60).convert("RGB")
    tint = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    Image.blend(img, tint, 0.4).save(out, "JPEG", quality=quality)
    return out.getvalue()


def write_demo_set(folder: Path) -> dict[str, str]:
    """The demo's images: good ones and a few awkward ones. Returns name -> what it is."""
    folder.mkdir(parents=True, exist_ok=True)
    what: dict[str, str] = {}
    for i in range(1, 7):
        (folder / f"car-{i}.jpg").write_bytes(vehicle_photo(i))
        what[f"car-{i}.jpg"] = "a photo of a car"
    (folder / "big-photo.jpg").write_bytes(noise_jpeg((6000, 4000)))
    what["big-photo.jpg"] = "24 MP, too many bytes for most vendors: resized before sending"
    Image.new("RGB", (8, 8), "red").save(folder / "tiny.png")
    what["tiny.png"] = "8x8 pixels: too small"
    (folder / "notes.jpg").write_text("this is not an image, whatever its name says\n")
    what["notes.jpg"] = "text named .jpg"
    Image.new("1", (20_000, 10_000)).save(folder / "bomb.png")
    what["bomb.png"] = "200 megapixels in a small file: a decompression bomb"
    (folder / "no-plate.png").write_bytes(make_image({"empty": True}, size=(640, 480)))
    what["no-plate.png"] = "the vendor finds nothing in it"
    return what
