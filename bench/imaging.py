"""Benchmark: vrec's image fitting against what a user would write instead, at equal output.

    .venv/bin/python bench/imaging.py [--repeat N] [--rounds N]

Inputs: a 12 MP and a 24 MP JPEG and a 12 MP PNG (photo-like, generated), fitted to each
vendor's declared limits (Juhe's two APIs share theirs: one row). Every path runs in a
fresh process, so each peak RSS belongs to that path alone (interpreter, libraries and
the input held in memory included), and returns what a vendor is sent: JPEG bytes and
their base64.

Equal output size (the vendor's full allowed size, ``fit_size``):
  pillow      Image.open, convert, resize(LANCZOS), save(quality=90): the naive path
  thumbnail   Image.open, thumbnail(LANCZOS, reducing_gap=2.0), save: what Pillow's docs
              advise for shrinking (JPEG draft at 2x the target, then a reduce + resample)
  pyvips      thumbnail_buffer + jpegsave_buffer(Q=90, 4:2:0), if pyvips is installed
  exact       vrec ``prepare(fit="exact")`` as shipped (libvips for JPEG when installed)
  exact-pil   vrec ``prepare(fit="exact", use_vips=False)``: Pillow only
Separately, at its own, smaller output size:
  fast        vrec ``prepare(fit="fast")``: a JPEG decode-time scale taken as the result

Each figure: output size, base64 bytes (OVER: the vendor would refuse it), median wall ms
and CPU ms per image (CPU: all threads of the process, so libvips' threads count; on a
shared machine it varies far less than wall time), peak RSS, and SSIM against an exact
LANCZOS fit of the decoded source (Pillow, no reducing gap): luma, 7x7 uniform windows,
K1 0.01, K2 0.03 (scikit-image's structural_similarity defaults). An output of another
size is resampled to the reference's with LANCZOS first.

Target: ``exact`` 24 MP JPEG -> 4096 px (Juhe) takes no more CPU time than pyvips in the
same run, measured over ``--rounds`` interleaved rounds.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import verdict
from bench.peak import vm
from worker.config import FitMode
from worker.image_limits import ImageLimits
from worker.imaging import fit_size
from worker.providers.registry import names, provider_class

IMAGES = {
    "12MP.jpg": ((4000, 3000), "JPEG"),
    "24MP.jpg": ((6000, 4000), "JPEG"),
    "12MP.png": ((4000, 3000), "PNG"),
}
EQUAL = ("pillow", "thumbnail", "pyvips", "exact", "exact-pil")
PATHS = (*EQUAL, "fast")
TARGET = ("24MP.jpg", "juhe_car")


def vendor_groups() -> dict[str, ImageLimits]:
    """One entry per distinct set of limits, named by the vendors that declare it."""
    groups: dict[ImageLimits, list[str]] = {}
    for name in names():
        groups.setdefault(provider_class(name).limits, []).append(name)
    return {"+".join(vendors): limits for limits, vendors in groups.items()}


def limits_of(group: str) -> ImageLimits:
    return provider_class(group.split("+")[0]).limits


def photo(size: tuple[int, int]) -> Image.Image:
    """Smooth structure plus fine noise: compresses like a camera photo, not like a flat fill."""
    w, h = size
    coarse = Image.effect_noise((w // 16, h // 16), 60).resize((w, h), Image.Resampling.BICUBIC)
    fine = Image.effect_noise((w, h), 12)
    ramp = Image.linear_gradient("L").resize((w, h))
    green = Image.blend(ramp, fine, 0.3)
    return Image.merge("RGB", (Image.blend(coarse, fine, 0.25), green, ramp.rotate(180)))


# -- the paths (each runs in a child process) ------------------------------------------


# A path returns what a vendor is sent: the encoded file and its base64.
Path_ = Callable[[bytes, ImageLimits], tuple[bytes, bytes]]


def _jpeg(im: Image.Image) -> tuple[bytes, bytes]:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue(), base64.b64encode(buf.getvalue())


def pillow(data: bytes, limits: ImageLimits) -> tuple[bytes, bytes]:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    return _jpeg(im.resize(fit_size(*im.size, limits), Image.Resampling.LANCZOS))


def thumbnail(data: bytes, limits: ImageLimits) -> tuple[bytes, bytes]:
    im = Image.open(io.BytesIO(data))
    im.thumbnail(fit_size(*im.size, limits), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return _jpeg(im.convert("RGB"))


def pyvips_path(data: bytes, limits: ImageLimits) -> tuple[bytes, bytes]:
    import pyvips

    with Image.open(io.BytesIO(data)) as header:
        w, h = fit_size(*header.size, limits)
    out = pyvips.Image.thumbnail_buffer(data, w, height=h, size="force")
    encoded: bytes = out.jpegsave_buffer(Q=90, subsample_mode="on")
    return encoded, base64.b64encode(encoded)


def vrec(fit: FitMode, use_vips: bool | None) -> Path_:
    from worker.imaging import DecodeBudget, prepare

    budget = DecodeBudget(10**12)  # one image at a time here anyway

    def run(data: bytes, limits: ImageLimits) -> tuple[bytes, bytes]:
        out = prepare(data, limits, fit, budget=budget, use_vips=use_vips)
        return out.data, out.b64

    return run


def path_function(which: str) -> Path_:
    if which == "pillow":
        return pillow
    if which == "thumbnail":
        return thumbnail
    if which == "pyvips":
        return pyvips_path
    return {
        "exact": lambda: vrec("exact", None),
        "exact-pil": lambda: vrec("exact", False),
        "fast": lambda: vrec("fast", None),
    }[which]()


def child(path: str, group: str, which: str, repeat: int, out: str) -> None:
    """One measurement in this fresh process; prints one JSON line, writes the output."""
    data = Path(path).read_bytes()
    limits = limits_of(group)
    run = path_function(which)
    result, b64 = run(data, limits)  # warm-up: imports, codec tables, page faults
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result, b64 = run(data, limits)
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    Path(out).write_bytes(result)
    with Image.open(io.BytesIO(result)) as im:
        w, h = im.size
    figures = {"wall": statistics.median(walls) * 1000, "cpu": statistics.median(cpus) * 1000}
    figures |= {"rss": vm("VmHWM") / 2**20, "w": w, "h": h, "b64": len(b64)}
    print(json.dumps(figures))


def measure(path: Path, group: str, which: str, repeat: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".jpg") as out:
        cmd = [sys.executable, __file__, "--child", str(path), group, which, str(repeat), out.name]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        result: dict[str, float] = json.loads(line.strip().splitlines()[-1])
        result["ssim"] = ssim_to(Path(out.name).read_bytes(), path, group)
    return result


# -- SSIM ----------------------------------------------------------------------------------

_REFERENCES: dict[tuple[Path, str], np.ndarray] = {}


def reference(source: Path, group: str) -> np.ndarray:
    """Luma of the exact LANCZOS fit of ``source`` (full decode, no reducing gap)."""
    key = (source, group)
    if key not in _REFERENCES:
        with Image.open(source) as im:
            rgb = im.convert("RGB")
        fitted = rgb.resize(fit_size(*rgb.size, limits_of(group)), Image.Resampling.LANCZOS)
        _REFERENCES[key] = np.asarray(fitted.convert("L"), dtype=np.float64)
    return _REFERENCES[key]


def ssim_to(output: bytes, source: Path, group: str) -> float:
    ref = reference(source, group)
    with Image.open(io.BytesIO(output)) as im:
        out = im.convert("L")
    size = (ref.shape[1], ref.shape[0])
    if out.size != size:
        out = out.resize(size, Image.Resampling.LANCZOS)
    return ssim(np.asarray(out, dtype=np.float64), ref)


def ssim(x: np.ndarray, y: np.ndarray, win: int = 7) -> float:
    """Mean SSIM (Wang et al. 2004) of two 8-bit grey images, over every window that fits."""
    n = win * win

    def mean(z: np.ndarray) -> np.ndarray:  # the mean of each win x win window
        c = np.pad(z.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        window: np.ndarray = (c[win:, win:] - c[:-win, win:] - c[win:, :-win] + c[:-win, :-win]) / n
        return window

    mx, my = mean(x), mean(y)
    cov = n / (n - 1)  # sample covariance, as scikit-image
    vx = cov * (mean(x * x) - mx * mx)
    vy = cov * (mean(y * y) - my * my)
    vxy = cov * (mean(x * y) - mx * my)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


# -- the report ----------------------------------------------------------------------------


def pyvips_available() -> bool:
    cmd = [sys.executable, "-c", "import pyvips"]
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


def row(name: str, group: str, which: str, r: dict[str, float], base: dict[str, float]) -> str:
    limits = limits_of(group)
    over = "" if r["b64"] <= limits.max_b64_bytes else " OVER"
    dims = f"{r['w']:.0f}x{r['h']:.0f}"
    ratio = f"{base['cpu'] / r['cpu']:.2f}x" if which != "pillow" else ""
    return (
        f"{name:9} {group:24} {which:9} {dims:>10} {r['b64']:>10,.0f}{over:5} "
        f"{r['wall']:>8.0f} {r['cpu']:>7.0f} {r['rss']:>7.0f} {r['ssim']:>6.4f} {ratio:>7}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per process")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds for the target")
    parser.add_argument("--target-only", action="store_true", help="only the target's rounds")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, group, which, repeat, out = args.child
        child(path, group, which, int(repeat), out)
        return
    paths = [p for p in PATHS if p != "pyvips" or pyvips_available()]
    if "pyvips" not in paths:
        print("# pyvips is not installed: no libvips row (pip install 'pyvips[binary]')")
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, (size, fmt) in IMAGES.items():
            files[name] = Path(tmp) / name
            photo(size).save(files[name], fmt, **({"quality": 92} if fmt == "JPEG" else {}))
            print(f"# {name}: {size[0]}x{size[1]} {fmt}, {files[name].stat().st_size:,} bytes")
        if args.target_only:
            target(files[TARGET[0]], args.rounds, args.repeat)
            return
        head = (
            f"{'image':9} {'vendor limits':24} {'path':9} {'output':>10} {'b64 bytes':>10}"
            f"{'':5} {'wall ms':>8} {'CPU ms':>7} {'RSS MB':>7} {'SSIM':>6} {'vs CPU':>7}"
        )
        print(head)
        print("-" * len(head))
        for name, path in files.items():
            for group in vendor_groups():
                results = {w: measure(path, group, w, args.repeat) for w in paths}
                for which in paths:
                    if which == "fast":
                        print(f"{'':9} {'':24} {'(own size, not equal: vs pillow as well)'}")
                    print(row(name, group, which, results[which], results["pillow"]))
        if "pyvips" in paths:
            target(files[TARGET[0]], args.rounds, args.repeat)


def target(path: Path, rounds: int, repeat: int) -> None:
    """The issue's target, in interleaved rounds: exact 24 MP -> 4096 px vs pyvips."""
    group = next(g for g in vendor_groups() if TARGET[1] in g.split("+"))
    contenders = ("pyvips", "exact", "exact-pil", "pillow")
    cpu: dict[str, list[float]] = {w: [] for w in contenders}
    wall: dict[str, list[float]] = {w: [] for w in contenders}
    for _ in range(rounds):
        for which in contenders:
            r = measure(path, group, which, repeat)
            cpu[which].append(r["cpu"])
            wall[which].append(r["wall"])
    med = {w: statistics.median(cpu[w]) for w in contenders}
    print(f"\n{TARGET[0]} -> {group}, {rounds} interleaved rounds, median CPU (wall) ms:")
    for which in contenders:
        print(
            f"  {which:9} {med[which]:>6.0f} ({statistics.median(wall[which]):.0f})  "
            f"rounds: {', '.join(f'{v:.0f}' for v in cpu[which])}"
        )
    walls = {w: statistics.median(wall[w]) for w in contenders}
    for name, figures in (("CPU", med), ("wall", walls)):
        ratio = figures["exact"] / figures["pyvips"]
        print(
            f"target: exact {figures['exact']:.0f} ms <= pyvips {figures['pyvips']:.0f} ms "
            f"{name} per image (ratio {ratio:.3f}): {verdict(ratio <= 1)}"
        )
    print(
        f"Pillow-only exact: {med['exact-pil'] / med['pyvips']:.2f}x pyvips, "
        f"{med['pillow'] / med['exact-pil']:.2f}x faster than the naive path"
    )


if __name__ == "__main__":
    main()
