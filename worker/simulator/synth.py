"""Deterministic synthetic readings: the same image bytes always give the same answer.

``Synth(image_bytes)`` seeds a private PRNG with the image's sha256, so every vendor's
simulator can draw plausible values (plates in the real Chinese format, VINs with a
valid check digit, names, dates, models, colours, boxes) that are stable per image and
differ between images. Draw in a fixed order for stable answers; pass ``salt`` (e.g. the
vendor name) when two vendors should disagree about one image.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import date, timedelta
from typing import TypeVar

T = TypeVar("T")

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O on plates
PLATE_ALNUM = "0123456789" + PLATE_LETTERS
VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"  # no I, O or Q
_VIN_VALUES = dict(zip("ABCDEFGH", range(1, 9), strict=True)) | dict(
    zip("JKLMN", range(1, 6), strict=True)
)
_VIN_VALUES |= {"P": 7, "R": 9} | dict(zip("STUVWXYZ", range(2, 10), strict=True))
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华"
CITIES = ("上海市徐汇区", "北京市海淀区", "广州市天河区", "深圳市南山区", "杭州市西湖区")
STREETS = ("田林路", "中关村大街", "天河路", "科技园路", "文三路")
BRANDS = (
    ("别克", "SGM7151LAAA"),
    ("大众汽车", "SVW71810BU"),
    ("丰田", "GTM7250GB"),
    ("本田", "GHA7150AAC6A"),
    ("比亚迪", "BYD7005BEV"),
    ("吉利", "MR7153A01"),
)
COLORS_CN = ("白色", "黑色", "银色", "红色", "蓝色", "灰色")
PLATE_COLORS = (("蓝", "blue", 1), ("黄", "yellow", 3), ("绿", "green", 17), ("白", "white", 5))
VEHICLE_TYPES = ("小型轿车", "小型普通客车", "中型厢式货车", "小型越野客车")


def vin_check_digit(vin17: str) -> str:
    """ISO 3779 / GB 16735 check digit (position 9) of a 17-character VIN."""
    total = sum(
        (int(c) if c.isdigit() else _VIN_VALUES[c]) * w
        for c, w in zip(vin17, _VIN_WEIGHTS, strict=True)
    )
    rest = total % 11
    return "X" if rest == 10 else str(rest)


def request_id() -> str:
    """A fresh UUID-format request id: unique per call, unlike everything else here."""
    return str(uuid.uuid4())


class Synth:
    """Deterministic draws for one image."""

    def __init__(self, data: bytes, salt: str = "") -> None:
        self.digest = hashlib.sha256(salt.encode() + data).hexdigest()
        self.rng = random.Random(self.digest)

    def choice(self, items: tuple[T, ...] | list[T] | str) -> T:
        return self.rng.choice(items)  # type: ignore[return-value]

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def plate(self) -> str:
        """Province character, a letter, five letters/digits (mostly digits): 粤B12345."""
        tail = [self.rng.choice(PLATE_ALNUM if self.rng.random() < 0.3 else "0123456789")]
        tail += [self.rng.choice("0123456789") for _ in range(4)]
        self.rng.shuffle(tail)
        return self.choice(PROVINCES) + self.choice(PLATE_LETTERS) + "".join(tail)

    def plate_color(self) -> tuple[str, str, int]:
        """(Chinese name, English name, Juhe colour code)."""
        return self.choice(PLATE_COLORS)

    def vin(self) -> str:
        chars = [self.rng.choice(VIN_CHARS) for _ in range(17)]
        chars[9] = self.rng.choice("ABCDEFGHJKLMNPRSTVWXY123456789")  # model year code
        chars[8] = vin_check_digit("".join(chars[:8]) + "0" + "".join(chars[9:]))
        return "".join(chars)

    def name(self) -> str:
        return self.choice(SURNAMES) + "".join(self.choice(GIVEN) for _ in range(2))

    def address(self) -> str:
        number = self.rng.randint(1, 999)
        return f"{self.choice(CITIES)}{self.choice(STREETS)}{number}号"

    def brand_model(self) -> str:
        """A licence-style model: brand + 牌 + type code (别克牌SGM7151LAAA)."""
        brand, code = self.choice(BRANDS)
        return f"{brand}牌{code}"

    def color(self) -> str:
        return self.choice(COLORS_CN)

    def vehicle_type(self) -> str:
        return self.choice(VEHICLE_TYPES)

    def engine_no(self) -> str:
        return self.digits(1) + self.choice(PLATE_LETTERS) + self.digits(5)

    def day(self, start: date = date(2005, 1, 1), end: date = date(2024, 12, 31)) -> date:
        return start + timedelta(days=self.rng.randint(0, (end - start).days))

    def confidence(self, low: float = 0.85, high: float = 0.999) -> float:
        return round(self.rng.uniform(low, high), 3)

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) inside a width x height image."""
        left = self.rng.randint(0, max(0, width // 2))
        top = self.rng.randint(0, max(0, height // 2))
        return left, top, self.rng.randint(left, width), self.rng.randint(top, height)
