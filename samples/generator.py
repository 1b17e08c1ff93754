"""Invented, filled registration sheets with their truth: for tests, the demo and measurements.

Values are invented from small lists (names with readings, facility names, Tochigi
municipalities with made-up street numbers); a set of three sheets is consistent the way a real
set is (same facility, same representative, the contact among the staff). `render_pdf` fills the
blank official sheets on a computer: text on top of the blank page, ticks typed or drawn, the
seal drawn or placed as an image, like the PDFs facilities send.

    python -m renraku.samples.generator --out samples/inbox --seed 7
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import random
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from renraku.config import DEFAULT_TEMPLATES_DIR, PACKAGE_DIR
from renraku.extractors.glyphs import gothic_font
from renraku.extractors.templates import Template, load_templates

FORMS_DIR = PACKAGE_DIR / "samples" / "forms"
# Handwriting-style Japanese TrueType fonts (Debian packages in brackets). reportlab embeds only
# TrueType outlines, which all of these are; Style(font="hand") takes the first one installed.
HAND_FONTS: dict[str, list[str]] = {
    "klee": ["/usr/share/fonts/truetype/klee/KleeOne-Regular.ttf"],  # fonts-klee: pencil / pen
    "kiloji": ["/usr/share/fonts/truetype/kiloji/kiloji.ttf"],  # fonts-kiloji: longhand
    "seto": ["/usr/share/fonts/truetype/seto/setofont.ttf"],  # fonts-seto: felt pen
    "yusei": ["/usr/share/fonts/truetype/yusei-magic/YuseiMagic-Regular.ttf"],  # fonts-yusei-magic: marker
}
HAND_FONT_PACKAGES = {"klee": "fonts-klee", "kiloji": "fonts-kiloji", "seto": "fonts-seto",
                      "yusei": "fonts-yusei-magic"}
INKS = {"black": (0.05, 0.05, 0.08), "blue": (0.1, 0.15, 0.55), "pencil": (0.22, 0.22, 0.24),
        "blue_black": (0.08, 0.1, 0.3), "light_blue": (0.2, 0.3, 0.7), "soft_pencil": (0.38, 0.38, 0.4),
        "sepia": (0.25, 0.16, 0.1), "green_black": (0.06, 0.18, 0.12)}

SURNAMES = [("佐藤", "さとう", "sato"), ("鈴木", "すずき", "suzuki"),
            ("高橋", "たかはし", "takahashi"),
            ("田中", "たなか", "tanaka"), ("渡辺", "わたなべ", "watanabe"), ("伊藤", "いとう", "ito"),
            ("小林", "こばやし", "kobayashi"), ("加藤", "かとう", "kato"), ("吉田", "よしだ", "yoshida"),
            ("山口", "やまぐち", "yamaguchi"), ("松本", "まつもと", "matsumoto"), ("井上", "いのうえ", "inoue"),
            ("木村", "きむら", "kimura"), ("清水", "しみず", "shimizu"), ("斎藤", "さいとう", "saito"),
            ("阿部", "あべ", "abe"), ("森", "もり", "mori"), ("池田", "いけだ", "ikeda"),
            ("橋本", "はしもと", "hashimoto"),
            ("石井", "いしい", "ishii"), ("菊地", "きくち", "kikuchi"), ("大塚", "おおつか", "otsuka"),
            ("福田", "ふくだ", "fukuda"), ("関口", "せきぐち", "sekiguchi"), ("君島", "きみしま", "kimishima")]
GIVEN = [("花子", "はなこ", "hanako"), ("太郎", "たろう", "taro"), ("由美", "ゆみ", "yumi"),
         ("健一", "けんいち", "kenichi"), ("直美", "なおみ", "naomi"), ("誠", "まこと", "makoto"),
         ("愛", "あい", "ai"), ("翔太", "しょうた", "shota"), ("沙織", "さおり", "saori"), ("学", "まなぶ", "manabu"),
         ("和子", "かずこ", "kazuko"), ("浩二", "こうじ", "koji"), ("友美", "ともみ", "tomomi"),
         ("修", "おさむ", "osamu"), ("香織", "かおり", "kaori"), ("拓也", "たくや", "takuya"),
         ("悠斗", "ゆうと", "yuto"), ("奈々", "なな", "nana"), ("亮", "りょう", "ryo"), ("純子", "じゅんこ", "junko")]
PLACES = [("さくら", "さくら"), ("みどり", "みどり"), ("ひまわり", "ひまわり"), ("あおば", "あおば"),
          ("若葉", "わかば"), ("けやき", "けやき"), ("やまゆり", "やまゆり"), ("すずらん", "すずらん"),
          ("東町", "ひがしまち"), ("駅前", "えきまえ"), ("中央", "ちゅうおう"), ("本町", "ほんちょう")]
# (facility type check box, name suffix, its reading, representative titles, typical jobs)
FACILITY_KINDS = [
    ("clinic", "クリニック", "くりにっく", ["院長", "理事長"], ["医師", "看護師", "事務職員"]),
    ("hospital", "病院", "びょういん", ["院長", "理事長"], ["医師", "看護師", "医療ソーシャルワーカー", "事務職員"]),
    ("dental_clinic", "歯科医院", "しかいいん", ["院長"], ["歯科医師", "歯科衛生士", "事務職員"]),
    ("pharmacy", "調剤薬局", "ちょうざいやっきょく", ["代表取締役", "管理薬剤師"], ["薬剤師", "事務職員"]),
    ("home_nursing", "訪問看護ステーション", "ほうもんかんごすてーしょん", ["管理者", "所長"],
     ["看護師", "理学療法士", "作業療法士"]),
    ("care_management", "居宅介護支援事業所", "きょたくかいごしえんじぎょうしょ", ["管理者"], ["介護支援専門員"]),
    ("community_support_center", "地域包括支援センター", "ちいきほうかつしえんせんたー", ["センター長"],
     ["保健師", "社会福祉士", "介護支援専門員"]),
    ("care_service", "デイサービスセンター", "でいさーびすせんたー", ["施設長"], ["介護福祉士", "看護師"]),
]
FACILITY_TYPES = ["hospital", "clinic", "dental_clinic", "pharmacy", "home_nursing", "care_management",
                  "community_support_center", "care_service", "government", "other"]
MUNICIPALITIES = [("宇都宮市", "028"), ("栃木市", "0282"), ("小山市", "0285"), ("真岡市", "0285"),
                  ("鹿沼市", "0289"), ("日光市", "0288"), ("足利市", "0284"), ("佐野市", "0283"),
                  ("那須塩原市", "0287"), ("芳賀郡益子町", "0285"), ("下都賀郡壬生町", "0282"),
                  ("塩谷郡高根沢町", "028")]
TOWNS = ["本町", "中央", "駅前", "東町", "旭町", "緑町", "桜通り", "若草"]
ASSOCIATIONS = ["宇都宮市医師会", "下都賀郡市医師会", "小山地区医師会", "芳賀郡市医師会", "なし", ""]
FREE_MAIL = ["example-mail.jp", "mobile.example.ne.jp"]
DATE_STYLES = ["reiwa", "western_slash", "western_kanji", "reiwa_short", "iso"]
TICKS = ["✓", "○", "レ", "■", "●"]


@dataclass
class FilledSheet:
    """One sheet: the truth (normalised values, SPEC §2) and the text as the sender wrote it."""

    form_id: str
    truth: dict[str, Any]
    written: dict[str, str] = field(default_factory=dict)


@dataclass
class Person:
    name: str
    kana: str
    romaji: str  # the local part of the person's mail address


@dataclass
class Facility:
    """A facility as a sheet names it, with what goes with its kind."""

    kind: str  # the facility_type check box it ticks
    name: str
    kana: str
    titles: list[str]  # how its representative may sign
    jobs: list[str]  # jobs its staff have
    romaji: str  # the word its mail domain is made of
    other: str = ""  # facility_type_other, for kind "other"
    slug: str = ""  # a word for the kind, in mail domains


class UsualValues:
    """The generator's own small lists: the values the reader was tuned and calibrated on.

    A value source gives invent_set and invent_change their facility, place, people and mail
    domains; samples/values_wide.py is the other one. Each method takes the set's random stream,
    so a set is the same for the same seed.
    """

    name = "usual"
    free_mail = FREE_MAIL

    def facility(self, rng: random.Random) -> Facility:
        kind, suffix, suffix_kana, titles, jobs = rng.choice(FACILITY_KINDS)
        place, place_kana = rng.choice(PLACES)
        return Facility(kind, f"{place}{suffix}", f"{place_kana}{suffix_kana}", titles, jobs,
                        place_kana_romaji(place))

    def address(self, rng: random.Random) -> tuple[str, str, str]:
        """An address, its telephone area code and postal code."""
        city, area = rng.choice(MUNICIPALITIES)
        address = f"栃木県{city}{rng.choice(TOWNS)}{rng.randint(1, 5)}-{rng.randint(1, 30)}-{rng.randint(1, 20)}"
        return address, area, f"{rng.randint(320, 329)}-{rng.randint(0, 9999):04d}"

    def area(self, rng: random.Random) -> str:
        return rng.choice(MUNICIPALITIES)[1]

    def domain(self, rng: random.Random, facility: Facility) -> str:
        return f"{facility.romaji}-{rng.randint(10, 99)}.example.jp"

    def person(self, rng: random.Random, spaced: bool) -> Person:
        return _person(rng, spaced)

    def title(self, rng: random.Random, facility: Facility) -> str:
        return rng.choice(facility.titles)

    def association(self, rng: random.Random) -> str:
        return rng.choice(ASSOCIATIONS)


USUAL = UsualValues()


def _person(rng: random.Random, spaced: bool) -> Person:
    s, g = rng.choice(SURNAMES), rng.choice(GIVEN)
    sep = " " if spaced else ""
    return Person(f"{s[0]}{sep}{g[0]}", f"{s[1]} {g[1]}", f"{g[2]}.{s[2]}")


def write_date(day: dt.date, style: str) -> str:
    reiwa = day.year - 2018
    return {
        "reiwa": f"令和{reiwa}年{day.month}月{day.day}日",
        "reiwa_short": f"R{reiwa}.{day.month}.{day.day}",
        "western_slash": f"{day.year}/{day.month}/{day.day}",
        "western_kanji": f"{day.year}年{day.month}月{day.day}日",
        "iso": day.isoformat(),
    }[style]


def _phone(rng: random.Random, area: str) -> str:
    if len(area) == 3:
        return f"{area}-{rng.randint(600, 699)}-{rng.randint(1000, 9999)}"
    return f"{area}-{rng.randint(20, 99)}-{rng.randint(1000, 9999)}"


def invent_set(rng: random.Random, *, today: dt.date | None = None, values: Any = USUAL) -> list[FilledSheet]:
    """A consistent new-facility set: usage application, staff registration, pledge.

    `values` is the value source (UsualValues, or values_wide.WideValues)."""
    today = today or dt.date(2025, 10, 1)
    fac = values.facility(rng)
    facility = fac.name
    address, area, postal = values.address(rng)
    phone = _phone(rng, area)
    fax = phone[:-1] + str((int(phone[-1]) + 1) % 10)
    domain = values.domain(rng, fac)
    date = today - dt.timedelta(days=rng.randint(1, 60))
    date_style = rng.choice(DATE_STYLES)
    spaced = rng.random() < 0.5
    rep = values.person(rng, spaced)
    staff_people: list[Person] = []
    while len(staff_people) < rng.randint(1, 8):
        p = values.person(rng, spaced)
        if all(p.romaji != q.romaji for q in staff_people):
            staff_people.append(p)
    contact = staff_people[0]
    emails = [f"{p.romaji}@{domain if i % 3 else rng.choice([domain, *values.free_mail])}"
              for i, p in enumerate(staff_people)]
    admins = [i == 0 or rng.random() < 0.25 for i in range(len(staff_people))]
    rep_title = values.title(rng, fac)

    usage = FilledSheet("usage_application", {
        "application_date": date.isoformat(),
        "facility_name_kana": fac.kana,
        "facility_name": facility,
        **{f"facility_type.{t}": t == fac.kind for t in FACILITY_TYPES},
        "facility_type_other": fac.other,
        "postal_code": postal, "address": address, "phone": phone, "fax": fax,
        "representative_title": rep_title, "representative_name": rep.name,
        "contact_name": contact.name, "contact_phone": phone, "contact_email": emails[0],
        "medical_association": values.association(rng),
        "policy_agreed": rng.random() < 0.9,
    }, {"application_date": write_date(date, date_style)})
    staff = FilledSheet("staff_registration", {"facility_name": facility})
    for i in range(8):
        p = staff_people[i] if i < len(staff_people) else None
        n = i + 1
        staff.truth |= {
            f"staff[{n}].name": p.name if p else "",
            f"staff[{n}].name_kana": p.kana if p else "",
            f"staff[{n}].job": rng.choice(fac.jobs) if p else "",
            f"staff[{n}].admin": bool(p and admins[i]),
            f"staff[{n}].email": emails[i] if p else "",
        }
    pledge = FilledSheet("facility_pledge", {
        "pledge_date": date.isoformat(), "facility_name": facility, "address": address,
        "representative_title": rep_title, "representative_name": rep.name,
        "seal": rng.random() < 0.9,
    }, {"pledge_date": write_date(date, date_style)})
    return [usage, staff, pledge]


def invent_change(rng: random.Random, *, today: dt.date | None = None, values: Any = USUAL) -> FilledSheet:
    """A change notice (様式3) with one to six rows of 追加/削除/変更."""
    today = today or dt.date(2025, 10, 1)
    fac = values.facility(rng)
    area = values.area(rng)
    date = today - dt.timedelta(days=rng.randint(1, 30))
    style = rng.choice(DATE_STYLES)
    spaced = rng.random() < 0.5
    domain = values.domain(rng, fac)
    sheet = FilledSheet("staff_change", {
        "notice_date": date.isoformat(), "facility_name": fac.name, "phone": _phone(rng, area),
        "notifier_name": values.person(rng, spaced).name,
    }, {"notice_date": write_date(date, style)})
    rows = rng.randint(1, 6)
    for n in range(1, 7):
        used = n <= rows
        kind = rng.choice(["add", "remove", "modify"]) if used else ""
        p = values.person(rng, spaced)
        eff = date + dt.timedelta(days=rng.randint(0, 20))
        sheet.truth |= {
            f"changes[{n}].kind.add": kind == "add",
            f"changes[{n}].kind.remove": kind == "remove",
            f"changes[{n}].kind.modify": kind == "modify",
            f"changes[{n}].name": p.name if used else "",
            f"changes[{n}].name_kana": p.kana if used else "",
            f"changes[{n}].job": rng.choice(fac.jobs) if used else "",
            f"changes[{n}].admin": used and rng.random() < 0.2,
            f"changes[{n}].effective_date": eff.isoformat() if used else "",
            f"changes[{n}].email": f"{p.romaji}@{domain}" if used else "",
        }
        if used:
            sheet.written[f"changes[{n}].effective_date"] = write_date(eff, style)
    return sheet


def place_kana_romaji(place: str) -> str:
    table = {"さくら": "sakura", "みどり": "midori", "ひまわり": "himawari", "あおば": "aoba", "若葉": "wakaba",
             "けやき": "keyaki", "やまゆり": "yamayuri", "すずらん": "suzuran", "東町": "higashimachi",
             "駅前": "ekimae", "中央": "chuo", "本町": "honcho"}
    return table[place]


# ------------------------------------------------------------------------------- rendering

@dataclass
class Style:
    """How a sender filled the sheet on a computer."""

    tick: str = "✓"  # a typed sign, or "drawn" for a vector tick
    admin: str = "○"  # a typed sign, or "drawn" for a drawn circle
    seal: str = "drawn"  # drawn (vector circle and name) | image | text
    size: float = 10.5
    # Handwriting-style filling (see hand_style): the defaults keep the computer-filled look.
    font: str = "gothic"  # gothic | hand (first installed of HAND_FONTS) | a HAND_FONTS name | a .ttf path
    ink: tuple[float, float, float] | None = None  # pen colour (RGB 0-1) for text and drawn marks
    jitter: float = 0.0  # 0: typed; about 1: handwriting (per field and per character size, offset, tilt)
    seed: int = 0  # makes the jitter repeatable
    # Wider variation (wide_hand_style); 0 / None keep the sheets as they were.
    slant: float = 0.0  # letters lean by this many degrees (shear; positive: to the right)
    drift: float = 0.0  # the line wanders up or down by up to this share of the box height
    weight: float | None = None  # pen weight (stroke width added to the letters); None: from jitter


def random_style(rng: random.Random) -> Style:
    return Style(tick=rng.choice([*TICKS, "drawn"]), admin=rng.choice(["○", "〇", "◯", "drawn"]),
                 seal=rng.choice(["drawn", "image", "text"]), size=rng.choice([10.0, 10.5, 11.0]))


def hand_style(rng: random.Random, font: str | None = None) -> Style:
    """A sheet filled in by hand with a pen: a handwriting font, uneven letters, drawn marks."""
    names = available_hand_fonts()
    if font is None:
        if not names:
            raise RuntimeError("No handwriting font: install " + " or ".join(HAND_FONT_PACKAGES.values()))
        font = rng.choice(names)
    return Style(tick=rng.choice(["drawn", "drawn", "drawn", "レ"]), admin=rng.choice(["drawn", "drawn", "○"]),
                 seal=rng.choice(["drawn", "image"]), size=rng.choice([10.5, 11.0, 11.5, 12.0]), font=font,
                 ink=INKS[rng.choice(["black", "black", "blue", "pencil"])], jitter=rng.uniform(0.7, 1.3),
                 seed=rng.randrange(2**31))


def wide_hand_style(rng: random.Random, font: str | None = None) -> Style:
    """hand_style, with what people vary more: slant, size and place in the box, pen weight, ink."""
    base = hand_style(rng, font)
    return replace(base, size=round(rng.uniform(9.5, 13.5), 1), jitter=rng.uniform(0.6, 1.8),
                               slant=rng.uniform(-14, 14), drift=rng.uniform(0.0, 0.3), weight=rng.uniform(0.0, 0.7),
                               ink=INKS[rng.choice(list(INKS))])


def available_hand_fonts() -> list[str]:
    """Names in HAND_FONTS whose file is installed."""
    return [name for name, paths in HAND_FONTS.items() if any(Path(p).exists() for p in paths)]


def style_font(style: Style) -> str:
    """The registered reportlab font name a style writes with (gothic: the one typed sheets use)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if style.font == "gothic":
        return _font()
    key = style.font
    if key == "hand":
        names = available_hand_fonts()
        if not names:
            raise RuntimeError("No handwriting font: install " + " or ".join(HAND_FONT_PACKAGES.values()))
        key = names[0]
    if key in HAND_FONTS:
        path = next((p for p in HAND_FONTS[key] if Path(p).exists()), None)
        if path is None:
            raise RuntimeError(f"Handwriting font {key!r} missing: install {HAND_FONT_PACKAGES[key]}")
    elif Path(key).suffix.lower() == ".ttf" and Path(key).exists():
        path = key
    else:
        raise ValueError(f"Unknown font {style.font!r}: gothic, hand, {', '.join(HAND_FONTS)} or a .ttf path")
    name = f"SampleHand-{Path(path).stem}"
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, path))
    return name


def _font() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "SampleGothic" not in pdfmetrics.getRegisteredFontNames():
        path = gothic_font()
        if path is None:
            raise RuntimeError("No Japanese TrueType font: install fonts-ipaexfont-gothic")
        pdfmetrics.registerFont(TTFont("SampleGothic", path))
    return "SampleGothic"


def _seal_png(text: str) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (120, 120), (255, 255, 255, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((6, 6, 114, 114), outline=(200, 30, 30, 255), width=7)
    d.line((30, 60, 90, 60), fill=(200, 30, 30, 255), width=6)
    d.line((60, 30, 60, 90), fill=(200, 30, 30, 255), width=6)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


class _Pen:
    """Writes field values and marks the way a person with a pen does: never twice the same.

    Each field gets its own random numbers (from the style's seed and the field path), so a
    sheet renders the same every time while letters, baselines, tilt and marks vary.
    """

    def __init__(self, c: Any, style: Style, form_id: str, height: float) -> None:
        self.c, self.style, self.form_id, self.height = c, style, form_id, height
        self.font = style_font(style)
        self.fallback = _font()  # for typed signs a handwriting font draws badly or not at all
        self.ink = style.ink or (0.0, 0.0, 0.0)
        doc = random.Random(f"{style.seed}/{form_id}")
        self.weight = doc.uniform(0.0, 0.35) * min(style.jitter, 1.5)  # ballpoint pressure
        if style.weight is not None:
            self.weight = style.weight
        from reportlab.pdfbase import pdfmetrics

        self.glyphs = pdfmetrics.getFont(self.font).face.charToGlyph

    def font_for(self, ch: str) -> str:
        """The style's font, or the typed one for a character the style's font does not have
        (a rare kanji of a name in a handwriting font): a person writes every character."""
        return self.font if ord(ch) in self.glyphs or ch.isspace() else self.fallback

    def _rng(self, path: str) -> random.Random:
        return random.Random(f"{self.style.seed}/{self.form_id}/{path}")

    def _ink(self, line_width: float) -> None:
        self.c.setStrokeColorRGB(*self.ink)
        self.c.setFillColorRGB(*self.ink)
        self.c.setLineWidth(line_width)
        self.c.setLineCap(1)
        self.c.setLineJoin(1)

    def text(self, spec: Any, text: str) -> None:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        c, j, r = self.c, self.style.jitter, self._rng(spec.path)
        x0, top, x1, bottom = spec.box
        cy = self.height - (top + bottom) / 2
        size = (self.style.size - (0.3 if spec.kind == "email" else 0)) * (1 + r.uniform(-0.06, 0.12) * j)
        scales = [1 + r.gauss(0, 0.05 * j) for _ in text]
        lifts = [r.gauss(0, 0.45 * j) for _ in text]
        gap = r.uniform(-0.1, 0.7) * j

        def width(sz: float, gp: float) -> float:
            return sum(stringWidth(ch, self.font_for(ch), sz * k) + gp for ch, k in zip(text, scales, strict=True))

        room = (x1 - x0) - 8
        while size > 6 and width(size, gap) > room:
            if gap > 0:
                gap = max(0.0, gap - 0.2)
            else:
                size -= 0.5
        slack = max(0.0, room - width(size, gap))
        x = x0 + (6 if spec.kind == "date" else 4) + r.uniform(-1.5, min(slack, 16.0)) * min(j, 1.0)
        base = cy - size * 0.35 + r.uniform(-1.2, 1.2) * j
        c.saveState()
        self._ink(self.weight)  # with text render mode 2 (fill and stroke): a heavier pen line
        c.translate(x, base)
        c.rotate(r.uniform(-1.2, 1.2) * j)
        if self.style.drift:  # written above or below the middle of the box
            c.translate(0, r.uniform(-1, 1) * self.style.drift * (bottom - top))
        if self.style.slant:
            c.transform(1, 0, math.tan(math.radians(-self.style.slant)), 1, 0, 0)
        pos = 0.0
        for ch, k, lift in zip(text, scales, lifts, strict=True):
            font = self.font_for(ch)
            t = c.beginText(pos, lift)
            t.setTextRenderMode(2 if self.weight > 0.05 else 0)
            t.setFont(font, size * k)
            t.textOut(ch)
            c.drawText(t)
            pos += stringWidth(ch, font, size * k) + gap
        c.restoreState()

    def mark(self, spec: Any, sign: str) -> None:
        from reportlab.pdfbase import pdfmetrics

        c, j, r = self.c, self.style.jitter, self._rng(spec.path)
        x0, top, x1, bottom = spec.box
        cx, cy = (x0 + x1) / 2, self.height - (top + bottom) / 2
        c.saveState()
        self._ink(r.uniform(0.8, 1.6))
        if sign == "drawn" and spec.kind == "checkbox":
            h = bottom - top
            sx, sy = x0 + 1.5 + r.uniform(-1, 1.5) * j, cy + r.uniform(-1.5, 1.5) * j  # left arm starts
            vx, vy = cx - 1 + r.uniform(-1.2, 1.2) * j, cy - h / 2 + 1.5 + r.uniform(-1.5, 1.5) * j  # bottom
            ex = x1 + r.uniform(-1, 4) * j  # the long arm often runs past the box
            ey = cy + h / 2 + r.uniform(-1, 4) * j
            path = c.beginPath()
            path.moveTo(sx, sy)
            path.curveTo(sx + (vx - sx) * 0.4, sy - (sy - vy) * 0.3, vx - 0.5, vy + 1, vx, vy)
            bend = r.uniform(-2, 2) * j
            path.curveTo(vx + (ex - vx) * 0.3 + bend, vy + (ey - vy) * 0.45, ex - 1, ey - 1 - bend, ex, ey)
            c.drawPath(path, stroke=1, fill=0)
        elif sign == "drawn":
            rad = 5.5 * (1 + r.uniform(-0.1, 0.3) * j)
            squash = 1 + r.uniform(-0.22, 0.15) * j
            tilt = r.uniform(-0.6, 0.6)
            ox, oy = cx + r.uniform(-2, 2) * j, cy + r.uniform(-1.5, 1.5) * j
            start = r.uniform(0, 2 * math.pi)
            sweep = 2 * math.pi + math.radians(r.uniform(-25, 45)) * j  # a gap or an overlap
            drift = r.uniform(-0.2, 0.2) * j  # the pen does not come back to the same radius
            wobble, phase = r.uniform(0, 0.06) * j, r.uniform(0, 2 * math.pi)
            path = c.beginPath()
            steps = 40
            for i in range(steps + 1):
                a = start + sweep * i / steps
                rr = rad * (1 + drift * i / steps + wobble * math.sin(3 * a + phase))
                ex_, ey_ = rr * math.cos(a), rr * squash * math.sin(a)
                px = ox + ex_ * math.cos(tilt) - ey_ * math.sin(tilt)
                py = oy + ex_ * math.sin(tilt) + ey_ * math.cos(tilt)
                if i == 0:
                    path.moveTo(px, py)
                else:
                    path.lineTo(px, py)
            c.drawPath(path, stroke=1, fill=0)
        else:
            font = self.font
            if sign not in "○〇◯レ" or ord(sign) not in pdfmetrics.getFont(font).face.charToGlyph:
                font = self.fallback
            size = ((bottom - top) + 2 if spec.kind == "checkbox" else self.style.size) * (1 + r.uniform(-0.1, 0.2) * j)
            c.translate(cx + r.uniform(-1.5, 1.5) * j, cy - size * 0.35 + r.uniform(-1, 1) * j)
            c.rotate(r.uniform(-8, 8) * j)
            c.setFont(font, size)
            c.drawCentredString(0, 0, sign)
        c.restoreState()


def _overlay(sheet: FilledSheet, template: Template, style: Style) -> bytes:
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    font = _font()
    width, height = template.page_size
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(width, height))

    def y(top: float) -> float:  # template coordinates are top-down, PDF's bottom-up
        return height - top

    handwritten = style.font != "gothic" or style.jitter > 0 or style.ink is not None
    pen = _Pen(c, style, sheet.form_id, height) if handwritten else None
    for spec in template.fields:
        value = sheet.truth.get(spec.path)
        x0, top, x1, bottom = spec.box
        cx, cy = (x0 + x1) / 2, (top + bottom) / 2
        if spec.kind in ("checkbox", "admin_mark"):
            if not value:
                continue
            sign = style.tick if spec.kind == "checkbox" else style.admin
            if pen is not None:
                pen.mark(spec, sign)
                continue
            if sign == "drawn":
                c.setLineWidth(1.4)
                if spec.kind == "checkbox":
                    c.line(x0 + 2, y(cy), cx - 1, y(bottom - 2))
                    c.line(cx - 1, y(bottom - 2), x1 + 1, y(top - 2))
                else:
                    c.circle(cx, y(cy), 5.5, stroke=1, fill=0)
                continue
            size = (bottom - top) + 2 if spec.kind == "checkbox" else style.size
            c.setFont(font, size)
            c.drawCentredString(cx, y(cy) - size * 0.35, sign)
        elif spec.kind == "seal":
            if not value:
                continue
            surname = sheet.truth.get("representative_name", "印")[:2]
            if style.seal == "image":
                seal = ImageReader(io.BytesIO(_seal_png(surname)))
                c.drawImage(seal, cx - 17, y(cy) - 17, 34, 34, mask="auto")
            else:
                c.setStrokeColorRGB(0.8, 0.1, 0.1)
                c.setFillColorRGB(0.8, 0.1, 0.1)
                c.setLineWidth(1.5)
                c.circle(cx, y(cy), 16, stroke=1, fill=0)
                if style.seal == "text":
                    c.setFont(font, 9)
                    c.drawCentredString(cx, y(cy) - 3, surname)
                c.setStrokeColorRGB(0, 0, 0)
                c.setFillColorRGB(0, 0, 0)
        else:
            text = sheet.written.get(spec.path, value if isinstance(value, str) else "")
            if not text:
                continue
            if pen is not None:
                pen.text(spec, text)
                continue
            size = style.size if spec.kind != "email" else style.size - 0.3
            while size > 6 and c.stringWidth(text, font, size) > (x1 - x0) - 8:
                size -= 0.5
            c.setFont(font, size)
            c.drawString(x0 + 4 if spec.kind not in ("date",) else x0 + 6, y(cy) - size * 0.35, text)
    c.showPage()
    c.save()
    return buf.getvalue()


def render_pdf(sheets: list[FilledSheet], style: Style | None = None,
               templates: list[Template] | None = None) -> bytes:
    """The sheets filled on a computer, as one PDF (one page per sheet) with a text layer."""
    from pypdf import PdfReader, PdfWriter

    style = style or Style()
    templates = templates or load_templates(DEFAULT_TEMPLATES_DIR)
    by_form = {t.form_id: t for t in templates}
    writer = PdfWriter()
    for sheet in sheets:
        if sheet.form_id == "cover":
            page = PdfReader(io.BytesIO(render_cover(sheet))).pages[0]
            writer.add_page(page)
            continue
        template = by_form[sheet.form_id]
        blank = writer.add_page(PdfReader(FORMS_DIR / template.source.file).pages[template.source.page - 1])
        blank.merge_page(PdfReader(io.BytesIO(_overlay(sheet, template, style))).pages[0])
    writer.add_metadata({"/Producer": "renraku sample generator", "/Title": "invented sample"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def invent_cover(rng: random.Random, facility: str, pages: int) -> FilledSheet:
    sender = _person(rng, True)
    return FilledSheet("cover", {"to": "どこでも連絡帳事務局 御中", "sender": facility,
                                 "sender_name": sender.name, "pages": f"{pages}枚"})


def render_cover(sheet: FilledSheet) -> bytes:
    """A fax cover sheet (送付状) as facilities write them: no official layout."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    font = _font()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    c.setFont(font, 22)
    c.drawCentredString(A4[0] / 2, A4[1] - 90, "FAX送付状")
    c.setFont(font, 12)
    lines = [f"宛先：{sheet.truth['to']}", f"送信元：{sheet.truth['sender']}",
             f"担当：{sheet.truth['sender_name']}", f"送信枚数：{sheet.truth['pages']}（本紙を含む）",
             "いつもお世話になっております。申込書類を送付いたします。"]
    for i, line in enumerate(lines):
        c.drawString(70, A4[1] - 160 - 28 * i, line)
    c.showPage()
    c.save()
    return buf.getvalue()


def truth_lines(sheets: list[FilledSheet], file: str) -> list[dict[str, Any]]:
    return [{"file": file, "page": i + 1, "form_id": s.form_id, "fields": s.truth} for i, s in enumerate(sheets)]


def eml_with_attachments(attachments: list[tuple[str, bytes]], *, subject: str, sender: str,
                         when: dt.datetime, body: str = "", message_id: str | None = None) -> bytes:
    """An e-mail as a facility sends it: Japanese subject and file names (RFC 2047/2231)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "どこでも連絡帳事務局 <jimukyoku@renraku.example.jp>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id or make_msgid(domain="sender.example.jp")
    msg.set_content(body or "お世話になっております。申込書類を添付いたします。\nよろしくお願いいたします。\n")
    for name, data in attachments:
        maintype, subtype = ("application", "pdf") if name.endswith(".pdf") else ("application", "octet-stream")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def _guide_docx() -> bytes:
    """A small Word-like attachment (a zip), as facilities attach the usage guide to their mail."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<document>利用案内</document>")
    return buf.getvalue()


def write_demo_inbox(out: Path, seed: int = 7, truth_file: Path | None = None) -> list[dict[str, Any]]:
    """The bundled demo inputs: sets as one PDF, as an e-mail, with a cover page, a change notice.

    The truth goes to `truth_file` (default: inbox_truth.jsonl beside the inbox folder).
    """
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    truth: list[dict[str, Any]] = []

    first = invent_set(rng)
    name = f"申込書一式_{first[0].truth['facility_name']}.pdf"
    (out / name).write_bytes(render_pdf(first, random_style(rng)))
    truth += truth_lines(first, name)

    second = invent_set(rng)
    files = [(f"{label}.pdf", render_pdf([s], random_style(rng)))
             for label, s in zip(["利用申込書", "登録申請書", "誓約書"], second, strict=True)]
    subject = f"どこでも連絡帳 利用申込書の送付（{second[0].truth['facility_name']}）"
    eml = eml_with_attachments([*files, ("利用案内.docx", _guide_docx())], subject=subject,
                               sender=f"{second[0].truth['contact_name']} <{second[0].truth['contact_email']}>",
                               when=dt.datetime(2025, 9, 2, 14, 50, tzinfo=dt.timezone(dt.timedelta(hours=9))),
                               message_id=f"<demo-{seed}.20250902145005@sender.example.jp>")
    (out / "20250902_145005.eml").write_bytes(eml)
    for (fname, _data), sheet in zip(files, second, strict=True):
        truth += truth_lines([sheet], f"20250902_145005.eml#{fname}")

    third = invent_set(rng)
    cover = invent_cover(rng, third[0].truth["facility_name"], 4)
    name = "FAX_20250908_101500.pdf"
    (out / name).write_bytes(render_pdf([cover, *third], random_style(rng)))
    truth += truth_lines([cover, *third], name)

    change = invent_change(rng)
    name = f"従事者登録変更通知書_{change.truth['facility_name']}.pdf"
    (out / name).write_bytes(render_pdf([change], random_style(rng)))
    truth += truth_lines([change], name)

    with open(truth_file or out.parent / "inbox_truth.jsonl", "w", encoding="utf-8") as fh:
        for line in truth:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PACKAGE_DIR / "samples" / "inbox")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from renraku.samples.degrade import write_demo_images  # degrade builds on this module

    truth = write_demo_inbox(args.out, args.seed)
    images = write_demo_images(args.out, args.seed)
    with open(args.out.parent / "inbox_truth.jsonl", "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in images)
    print(f"{len(truth) + len(images)} pages written to {args.out}")


if __name__ == "__main__":
    main()
