"""Benchmark: vrec's image preparation against a naive Pillow path, per vendor.

    .venv/bin/python bench/imaging.py [--repeat N] [--vendors juhe_car,tencent_vehicle_license]

For a 12 MP and a 24 MP JPEG and a 12 MP PNG (photo-like, generated), fitted to each
vendor's limits, it prints ms per image, images per second per core (one thread) and
peak RSS, for vrec's ``prepare`` and for the naive path (open, convert, LANCZOS resize
to the same fit, save JPEG, base64), and the speed ratio. Every measurement runs in a
fresh subprocess, so each peak RSS belongs to one path alone (it includes the
interpreter, Pillow and the input file held in memory).

Three paths: ``naive``; ``vrec``, the shipped path, which accepts a JPEG decoded at 1/2,
1/4 or 1/8 scale when that lands within half an octave below the vendor's maximum side
(24 MP to a 4096 px limit comes out 3000x2000); and ``exact``, vrec with that shortcut
off, so its output has exactly the naive path's size: the like-for-like comparison.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import worker.imaging
from worker.image_limits import ImageLimits
from worker.imaging import fit_size, prepare
from worker.providers.registry import names, provider_class

# Each provider's own declared limits (from its vendor doc).
VENDORS: dict[str, ImageLimits] = {name: provider_class(name).limits for name in names()}
PATHS = ("naive", "vrec", "exact")
TARGET = ("24MP.jpg", "juhe_car")  # the target: >= 3x naive, peak RSS < 100 MB
IMAGES = {
    "12MP.jpg": ((4000, 3000), "JPEG"),
    "24MP.jpg": ((6000, 4000), "JPEG"),
    "12MP.png": ((4000, 3000), "PNG"),
}


def photo(size: tuple[int, int]) -> Image.Image:
    """Smooth structure plus fine noise: compresses like a camera photo, not like a flat fill."""
    w, h = size
    coarse = Image.effect_noise((w // 16, h // 16), 60).resize((w, h), Image.Resampling.BICUBIC)
    fine = Image.effect_noise((w, h), 12)
    ramp = Image.linear_gradient("L").resize((w, h))
    green = Image.blend(ramp, fine, 0.3)
    return Image.merge("RGB", (Image.blend(coarse, fine, 0.25), green, ramp.rotate(180)))


def naive(data: bytes, limits: ImageLimits) -> tuple[int, int, int]:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    im = im.resize(fit_size(*im.size, limits), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return im.width, im.height, len(base64.b64encode(buf.getvalue()))


def vrec(data: bytes, limits: ImageLimits) -> tuple[int, int, int]:
    out = prepare(data, limits)
    return out.width, out.height, len(out.b64)


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, because ru_maxrss survives fork+exec on Linux
    and would report the parent's peak (the generated images) for every child."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: best effort


def child(path: str, vendor: str, which: str, repeat: int) -> None:
    """One measurement in this fresh process; prints one JSON line."""
    data = Path(path).read_bytes()
    limits = VENDORS[vendor]
    if which == "exact":
        worker.imaging.HALF_OCTAVE = 1.0  # only a decode-time scale that fits exactly
    run = naive if which == "naive" else vrec
    result = run(data, limits)  # warm-up: imports, codec tables, page faults
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run(data, limits)
        times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1000
    rss_mb = peak_rss_mb()
    w, h, b64 = result
    print(json.dumps({"ms": ms, "rss": rss_mb, "w": w, "h": h, "b64": b64}))


def measure(path: Path, vendor: str, which: str, repeat: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", str(path), vendor, which, str(repeat)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--vendors", default=",".join(VENDORS))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, vendor, which, repeat = args.child
        child(path, vendor, which, int(repeat))
        return
    vendors = args.vendors.split(",")
    target: dict[str, dict[str, float]] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, (size, fmt) in IMAGES.items():
            files[name] = Path(tmp) / name
            photo(size).save(files[name], fmt, **({"quality": 92} if fmt == "JPEG" else {}))
            print(f"# {name}: {size[0]}x{size[1]} {fmt}, {files[name].stat().st_size:,} bytes")
        head = (
            f"{'image':9} {'vendor':24} {'path':5} {'output':>10} {'b64 bytes':>10} "
            f"{'ms/img':>8} {'img/s/core':>10} {'peak RSS MB':>11} {'speed-up':>8}"
        )
        print(head)
        print("-" * len(head))
        for name, path in files.items():
            for vendor in vendors:
                results = {w: measure(path, vendor, w, args.repeat) for w in PATHS}
                for which, r in results.items():
                    fits = "" if r["b64"] <= VENDORS[vendor].max_b64_bytes else " OVER BUDGET"
                    dims = f"{r['w']:.0f}x{r['h']:.0f}"
                    ratio = results["naive"]["ms"] / r["ms"]
                    gain = f"{ratio:.2f}x" if which != "naive" else ""
                    print(
                        f"{name:9} {vendor:24} {which:5} {dims:>10} {r['b64']:>10,.0f} "
                        f"{r['ms']:>8.1f} {1000 / r['ms']:>10.2f} {r['rss']:>11.1f} {gain:>8}{fits}"
                    )
                if (name, vendor) == TARGET:
                    target = results
        if target is not None:
            _verdict(target)


def _verdict(results: dict[str, dict[str, float]]) -> None:
    """The issue's target line: 24 MP JPEG to 4096 px / 4 MB, >= 3x naive, RSS < 100 MB."""
    naive_ms = results["naive"]["ms"]
    print()
    for which in ("vrec", "exact"):
        r = results[which]
        ratio, ok = naive_ms / r["ms"], naive_ms / r["ms"] >= 3 and r["rss"] < 100
        print(
            f"target 24 MP JPEG -> juhe_car ({which}, {r['w']:.0f}x{r['h']:.0f}): "
            f"{ratio:.2f}x naive, peak RSS {r['rss']:.0f} MB: {'PASS' if ok else 'MISS'}"
        )


if __name__ == "__main__":
    main()
