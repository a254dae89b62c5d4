"""Deterministic demo datasets for Manara.

:func:`write_demo_files` writes four realistic files that a regional administration or an
industrial SME would hand to the hub, each exercising a different ingestion path:

* ``citizen_requests.csv`` -- UTF-8, comma-delimited: ~5,000 citizen service requests of the
  Casablanca-Settat region in 2025, with free-text subjects in Arabic (MSA), Darija and French.
* ``machine_telemetry.csv`` -- semicolon-delimited SCADA export of a textile / automotive-parts
  plant: one row per minute per machine over three working days (two shifts, 06:00-20:00), with a
  few sensor gaps and injected overheating episodes that raise ``ALARM`` rows.
* ``communes.json`` -- newline-delimited JSON, one flat object per commune of the region.
* ``suppliers_ar_cp1256.csv`` -- a small supplier register encoded in Windows-1256 with CRLF line
  endings, as exported by many Moroccan administration desktops. ICE numbers are 15 digits (with the
  usual leading zeros, so read that column as a string) and divisible by 97.

Only the standard library is used; every random draw comes from a :class:`random.Random` seeded from
``seed``, so the same seed always produces byte-identical files. Figures are plausible orders of
magnitude for a demo, not official statistics.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

__all__ = ["DemoDataset", "PROVINCES", "write_demo_files"]


@dataclass(frozen=True)
class DemoDataset:
    """A demo file written by :func:`write_demo_files`."""

    name: str
    path: Path
    description: str
    owner: str


# --------------------------------------------------------------------------------------------------
# Reference data: the region, its provinces/prefectures and communes
# --------------------------------------------------------------------------------------------------

# (province, Arabic name, relative weight for citizen requests)
_PROVINCES: tuple[tuple[str, str, int], ...] = (
    ("Casablanca", "الدار البيضاء", 50),
    ("Mohammedia", "المحمدية", 7),
    ("El Jadida", "الجديدة", 11),
    ("Settat", "سطات", 9),
    ("Berrechid", "برشيد", 8),
    ("Benslimane", "بنسليمان", 3),
    ("Sidi Bennour", "سيدي بنور", 5),
    ("Médiouna", "مديونة", 3),
    ("Nouaceur", "النواصر", 6),
)

#: The nine provinces and prefectures of the Casablanca-Settat region.
PROVINCES: tuple[str, ...] = tuple(p[0] for p in _PROVINCES)

# (name_fr, name_ar, province, commune_type, population, area_km2)
_COMMUNES: tuple[tuple[str, str, str, str, int, float], ...] = (
    ("Casablanca", "الدار البيضاء", "Casablanca", "urbaine", 3359818, 220.0),
    ("Mohammedia", "المحمدية", "Mohammedia", "urbaine", 208612, 34.5),
    ("Aïn Harrouda", "عين حرودة", "Mohammedia", "urbaine", 62420, 44.2),
    ("Beni Yakhlef", "بني يخلف", "Mohammedia", "rurale", 47183, 61.3),
    ("Chellalate", "الشلالات", "Mohammedia", "rurale", 53711, 33.8),
    ("Sidi Moussa Ben Ali", "سيدي موسى بن علي", "Mohammedia", "rurale", 18066, 94.1),
    ("Sidi Moussa El Majdoub", "سيدي موسى المجدوب", "Mohammedia", "rurale", 24315, 52.6),
    ("El Jadida", "الجديدة", "El Jadida", "urbaine", 194934, 35.2),
    ("Azemmour", "أزمور", "El Jadida", "urbaine", 40920, 10.6),
    ("Bir Jdid", "البئر الجديد", "El Jadida", "urbaine", 14123, 7.9),
    ("Moulay Abdallah", "مولاي عبد الله", "El Jadida", "rurale", 58260, 118.4),
    ("Ouled Frej", "أولاد فرج", "El Jadida", "urbaine", 8402, 6.3),
    ("Sidi Smaïl", "سيدي إسماعيل", "El Jadida", "rurale", 12854, 97.5),
    ("Settat", "سطات", "Settat", "urbaine", 142250, 46.1),
    ("Ben Ahmed", "ابن أحمد", "Settat", "urbaine", 26340, 15.4),
    ("El Borouj", "البروج", "Settat", "urbaine", 18274, 12.7),
    ("Oulad Saïd", "أولاد سعيد", "Settat", "urbaine", 9312, 8.8),
    ("Guisser", "كيسر", "Settat", "rurale", 8127, 142.9),
    ("Berrechid", "برشيد", "Berrechid", "urbaine", 136634, 30.3),
    ("Had Soualem", "حد السوالم", "Berrechid", "urbaine", 43075, 24.8),
    ("Deroua", "الدروة", "Berrechid", "urbaine", 49210, 70.2),
    ("Sidi Rahal Chatai", "سيدي رحال الشاطئ", "Berrechid", "urbaine", 22497, 18.6),
    ("El Gara", "الكارة", "Berrechid", "urbaine", 14186, 11.9),
    ("Oulad Abbou", "أولاد عبو", "Berrechid", "rurale", 6351, 103.7),
    ("Benslimane", "بنسليمان", "Benslimane", "urbaine", 57101, 29.4),
    ("Bouznika", "بوزنيقة", "Benslimane", "urbaine", 37238, 21.5),
    ("El Mansouria", "المنصورية", "Benslimane", "rurale", 23154, 57.8),
    ("Sidi Bennour", "سيدي بنور", "Sidi Bennour", "urbaine", 50112, 16.7),
    ("Zemamra", "الزمامرة", "Sidi Bennour", "urbaine", 14537, 9.2),
    ("Oualidia", "الوليدية", "Sidi Bennour", "urbaine", 7302, 12.4),
    ("Laaounate", "العونات", "Sidi Bennour", "rurale", 6286, 88.3),
    ("Médiouna", "مديونة", "Médiouna", "urbaine", 17268, 12.1),
    ("Tit Mellil", "تيط مليل", "Médiouna", "urbaine", 40285, 25.6),
    ("Lahraouyine", "الهراويين", "Médiouna", "urbaine", 67429, 16.9),
    ("Sidi Hajjaj Oued Hassar", "سيدي حجاج واد حصار", "Médiouna", "rurale", 59875, 59.3),
    ("Nouaceur", "النواصر", "Nouaceur", "rurale", 20341, 48.7),
    ("Dar Bouazza", "دار بوعزة", "Nouaceur", "urbaine", 151373, 63.2),
    ("Bouskoura", "بوسكورة", "Nouaceur", "urbaine", 103026, 81.5),
    ("Ouled Saleh", "أولاد صالح", "Nouaceur", "rurale", 40176, 97.0),
    ("Oulad Azzouz", "أولاد عزوز", "Nouaceur", "rurale", 36412, 72.4),
)

# Casablanca requests mention the arrondissement rather than the commune.
_CASA_ARRONDISSEMENTS: tuple[tuple[str, str], ...] = (
    ("Maârif", "المعاريف"),
    ("Hay Hassani", "الحي الحسني"),
    ("Sidi Bernoussi", "سيدي البرنوصي"),
    ("Aïn Chock", "عين الشق"),
    ("Derb Sultan", "درب السلطان"),
    ("Hay Mohammadi", "الحي المحمدي"),
    ("Anfa", "أنفا"),
    ("Sidi Moumen", "سيدي مومن"),
    ("Ben M'Sick", "ابن مسيك"),
    ("Aïn Sebaâ", "عين السبع"),
)

# --------------------------------------------------------------------------------------------------
# 1. Citizen requests
# --------------------------------------------------------------------------------------------------

_CHANNELS: tuple[tuple[str, int], ...] = (
    ("guichet", 38),
    ("portail web", 27),
    ("téléphone", 12),
    ("WhatsApp", 13),
    ("bureau d'ordre", 10),
)
_OFFICE_CHANNELS = frozenset({"guichet", "téléphone", "bureau d'ordre"})

# Language weights (ar, fr, ary) by channel.
_LANG_BY_CHANNEL: dict[str, tuple[int, int, int]] = {
    "guichet": (40, 25, 35),
    "portail web": (35, 55, 10),
    "téléphone": (30, 20, 50),
    "WhatsApp": (20, 20, 60),
    "bureau d'ordre": (60, 38, 2),
}

# Slots filled into subject templates; each slot is a tuple of (fr, ar, ary) variants.
_SLOTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "motif": (
        ("un dossier bancaire", "ملف بنكي", "الدوسي ديال البنكة"),
        ("l'inscription scolaire", "التسجيل المدرسي", "نسجل الولد فالمدرسة"),
        ("une demande de bourse", "طلب المنحة", "المنحة ديال الجامعة"),
        ("la demande de passeport", "طلب جواز السفر", "نخرج الباسبور"),
        ("un dossier CNSS", "ملف الضمان الاجتماعي", "الدوسي ديال الضمان الاجتماعي"),
        ("l'ouverture d'un compteur d'électricité", "فتح عداد الكهرباء", "نركب الكونتور ديال الضو"),
        ("un dossier de mariage", "ملف الزواج", "الدوسي ديال الزواج"),
    ),
    "qui": (
        ("pour mon fils", "لابني", "ديال ولدي"),
        ("pour ma fille", "لابنتي", "ديال بنتي"),
        ("pour ma mère", "لوالدتي", "ديال الواليدة"),
        ("pour mon père", "لوالدي", "ديال الواليد"),
        ("pour mon épouse", "لزوجتي", "ديال مراتي"),
        ("pour moi-même", "لنفسي", "ديالي أنا"),
    ),
    "acte": (
        ("contrat de bail", "عقد الكراء", "عقد الكرا"),
        ("promesse de vente", "وعد بالبيع", "الوعد بالبيع ديال الدار"),
        ("procuration", "وكالة", "الوكالة"),
        ("attestation de travail", "شهادة العمل", "شهادة الخدمة"),
        ("engagement de prise en charge", "التزام بالتكفل", "الالتزام ديال التكفل"),
    ),
    "probleme": (
        ("Éclairage public en panne", "انقطاع الإنارة العمومية", "الضو مطفي فالزنقة"),
        ("Nid-de-poule dangereux sur la chaussée", "حفرة خطيرة في الطريق", "كاينة واحد الحفرة كبيرة فالطريق"),
        (
            "Ordures non collectées depuis plusieurs jours",
            "عدم جمع النفايات منذ أيام",
            "الزبل ما تجمعش هادي أيام",
        ),
        ("Fuite d'eau sur la voie publique", "تسرب الماء في الشارع", "الما كيتسرب فالزنقة"),
        ("Trottoir occupé par des étals", "احتلال الرصيف من طرف الباعة", "الفراشة شادين الطروطوار"),
    ),
}

# Suffixes (fr, ar, ary) appended to some subjects.
_SUFFIXES: tuple[tuple[str, str, str], ...] = (
    (" — urgent", " على وجه الاستعجال", " ضروري"),
    (" (2e demande)", " (طلب ثان)", " (هادي تاني مرة)"),
    (", merci de me rappeler", " مع الشكر", " الله يخليكم"),
    (" svp", " من فضلكم", " عافاكم"),
)

# service -> (duration range in days, templates per language). ``{lieu}`` is the commune/arrondissement.
_SERVICES: dict[str, tuple[tuple[int, int], dict[str, tuple[str, ...]], int]] = {
    "Certificat de résidence": (
        (1, 5),
        {
            "fr": (
                "Demande de certificat de résidence",
                "Certificat de résidence pour {motif}",
                "Certificat de résidence — quartier {lieu}",
                "Demande de certificat de résidence {qui}",
            ),
            "ar": (
                "طلب شهادة السكنى",
                "طلب شهادة السكنى من أجل {motif}",
                "الحصول على شهادة السكنى ب{lieu}",
                "طلب شهادة السكنى {qui}",
            ),
            "ary": (
                "بغيت شهادة السكنى",
                "بغيت شهادة السكنى باش {motif}",
                "عافاكم بغيت شهادة السكنى ديال {lieu}",
                "بغيت شهادة السكنى {qui}",
            ),
        },
        22,
    ),
    "Copie intégrale d'acte de naissance": (
        (0, 3),
        {
            "fr": (
                "Demande de copie intégrale d'acte de naissance",
                "Copie intégrale d'acte de naissance {qui}",
                "Extrait d'acte de naissance pour {motif}",
                "Acte de naissance : correction d'une erreur sur le prénom",
            ),
            "ar": (
                "طلب نسخة كاملة من رسم الولادة",
                "طلب نسخة كاملة من رسم الولادة {qui}",
                "طلب موجز رسم الولادة من أجل {motif}",
                "تصحيح خطأ في الاسم الشخصي برسم الولادة",
            ),
            "ary": (
                "بغيت نسخة كاملة من عقد الازدياد",
                "محتاج عقد الازدياد {qui}",
                "بغيت عقد الازدياد باش {motif}",
                "كاين غلط فالسمية فعقد الازدياد",
            ),
        },
        20,
    ),
    "Légalisation de signature": (
        (0, 1),
        {
            "fr": (
                "Légalisation de signature",
                "Légalisation de signature — {acte}",
                "Légalisation de signature sur {acte} {qui}",
            ),
            "ar": (
                "طلب تصحيح الإمضاء",
                "تصحيح الإمضاء على {acte}",
                "المصادقة على التوقيع في {acte} {qui}",
            ),
            "ary": (
                "بغيت نصحح الإمضاء",
                "بغيت نصحح الإمضاء ف{acte}",
                "بغيت نصادق على التوقيع ديال {acte}",
            ),
        },
        18,
    ),
    "Autorisation de construire": (
        (12, 75),
        {
            "fr": (
                "Demande d'autorisation de construire",
                "Autorisation de construire — lot à {lieu}",
                "Autorisation de construire : état d'avancement du dossier",
                "Autorisation de surélévation (R+2) à {lieu}",
            ),
            "ar": (
                "طلب رخصة البناء",
                "طلب رخصة البناء لبقعة أرضية ب{lieu}",
                "الاستفسار عن مآل ملف رخصة البناء",
                "طلب رخصة تعلية طابق إضافي ب{lieu}",
            ),
            "ary": (
                "بغيت رخصة البني",
                "فين وصل الملف ديال رخصة البني؟",
                "بغيت نزيد طبقة فالدار ف{lieu}",
                "عافاكم شنو خاصني باش ناخد رخصة البني ف{lieu}",
            ),
        },
        7,
    ),
    "Carte nationale (CNIE)": (
        (7, 21),
        {
            "fr": (
                "Renouvellement de la CNIE expirée",
                "Déclaration de perte de la carte nationale",
                "Première demande de CNIE {qui}",
                "Changement d'adresse sur la CNIE",
            ),
            "ar": (
                "طلب تجديد البطاقة الوطنية للتعريف الإلكترونية",
                "التصريح بضياع البطاقة الوطنية",
                "طلب أول بطاقة وطنية {qui}",
                "تغيير العنوان في البطاقة الوطنية",
            ),
            "ary": (
                "بغيت نجدد البطاقة الوطنية",
                "ضاعت ليا لاكارط ناسيونال",
                "بغيت ندير البطاقة الوطنية {qui}",
                "بغيت نبدل العنوان فلاكارط",
            ),
        },
        15,
    ),
    "Registre de commerce": (
        (2, 10),
        {
            "fr": (
                "Immatriculation au registre de commerce",
                "Inscription au registre de commerce — création de SARL à {lieu}",
                "Demande de modèle 7 du registre de commerce",
                "Modification au registre de commerce : transfert de siège",
            ),
            "ar": (
                "طلب التسجيل في السجل التجاري",
                "التقييد في السجل التجاري لشركة ذات مسؤولية محدودة ب{lieu}",
                "طلب النموذج 7 من السجل التجاري",
                "تغيير المقر الاجتماعي في السجل التجاري",
            ),
            "ary": (
                "بغيت نسجل الشركة فالسجل التجاري",
                "بغيت نموذج 7 ديال السجل التجاري",
                "بغيت نبدل المقر ديال الشركة ل{lieu}",
            ),
        },
        8,
    ),
    "Réclamation voirie / éclairage": (
        (1, 30),
        {
            "fr": (
                "{probleme} à {lieu}",
                "{probleme} — {lieu}",
                "Réclamation : {probleme} près de l'école à {lieu}",
            ),
            "ar": (
                "شكاية: {probleme} ب{lieu}",
                "{probleme} في {lieu}",
                "شكاية بخصوص {probleme} قرب المدرسة ب{lieu}",
            ),
            "ary": (
                "{probleme} ف{lieu}",
                "عافاكم {probleme} ف{lieu}",
                "{probleme} حدا المدرسة ف{lieu}",
            ),
        },
        10,
    ),
}

# Public holidays in 2025 (civil and religious, as observed): offices are closed.
_HOLIDAYS_2025: frozenset[date] = frozenset(
    date(2025, m, d)
    for m, d in (
        (1, 1),
        (1, 11),
        (1, 14),
        (3, 31),
        (4, 1),
        (5, 1),
        (6, 7),
        (6, 8),
        (6, 27),
        (7, 30),
        (8, 14),
        (8, 20),
        (8, 21),
        (9, 5),
        (9, 6),
        (11, 6),
        (11, 18),
    )
)

_LANGS: tuple[str, ...] = ("ar", "fr", "ary")
_LANG_INDEX = {"fr": 0, "ar": 1, "ary": 2}
_N_REQUESTS = 5000
_REQUESTS_AS_OF = datetime(2025, 12, 31, 23, 59, 59)


def _weighted(rng: random.Random, items: Sequence[tuple[str, int]]) -> str:
    return rng.choices([i[0] for i in items], weights=[i[1] for i in items], k=1)[0]


def _location(rng: random.Random, province: str, lang_idx: int) -> str:
    if province == "Casablanca":
        fr, ar = rng.choice(_CASA_ARRONDISSEMENTS)
    else:
        fr, ar = rng.choice([(c[0], c[1]) for c in _COMMUNES if c[2] == province])
    return fr if lang_idx == 0 else ar


def _subject(rng: random.Random, service: str, lang: str, province: str) -> str:
    idx = _LANG_INDEX[lang]
    template = rng.choice(_SERVICES[service][1][lang])
    values = {slot: rng.choice(options)[idx] for slot, options in _SLOTS.items()}
    values["lieu"] = _location(rng, province, idx)
    text = template.format(**values)
    if rng.random() < 0.22:
        text += rng.choice(_SUFFIXES)[idx]
    return text


def _submitted_at(rng: random.Random, channel: str) -> datetime:
    start = datetime(2025, 1, 1)
    while True:
        day = start + timedelta(days=rng.randrange(365))
        if channel in _OFFICE_CHANNELS:
            if day.weekday() >= 5 or day.date() in _HOLIDAYS_2025:
                continue
            seconds = rng.randrange(8 * 3600 + 30 * 60, 16 * 3600 + 30 * 60)
        else:
            # Online channels: any day, peaks in the evening.
            hour = rng.choices(
                range(24),
                weights=[1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 7, 6, 6, 7, 7, 7, 8, 9, 10, 10, 8, 5, 2],
                k=1,
            )[0]
            seconds = hour * 3600 + rng.randrange(3600)
        return day + timedelta(seconds=seconds)


def _write_citizen_requests(path: Path, rng: random.Random) -> None:
    province_weights = [(p[0], p[2]) for p in _PROVINCES]
    service_weights = [(name, spec[2]) for name, spec in _SERVICES.items()]
    records: list[tuple[datetime, list[object]]] = []
    for _ in range(_N_REQUESTS):
        channel = _weighted(rng, _CHANNELS)
        submitted = _submitted_at(rng, channel)
        province = _weighted(rng, province_weights)
        service = _weighted(rng, service_weights)
        lang = rng.choices(_LANGS, weights=_LANG_BY_CHANNEL[channel], k=1)[0]
        subject = _subject(rng, service, lang, province)

        lo, hi = _SERVICES[service][0]
        duration = min(rng.randint(lo, hi), rng.randint(lo, hi))  # skewed towards quick handling
        age_days = (_REQUESTS_AS_OF - submitted).days
        processing_days: int | None
        satisfaction: int | None = None
        if duration > age_days or rng.random() < 0.03:  # not finished yet (or stuck in the backlog)
            status = "reçue" if age_days < 2 or rng.random() < 0.25 else "en cours"
            processing_days = None
        else:
            status = "rejetée" if rng.random() < 0.09 else "traitée"
            processing_days = duration
            if rng.random() < 0.55:
                if status == "rejetée":
                    satisfaction = rng.choices((1, 2, 3, 4, 5), weights=(45, 25, 15, 10, 5), k=1)[0]
                elif duration > (lo + hi) / 2:
                    satisfaction = rng.choices((1, 2, 3, 4, 5), weights=(15, 20, 30, 25, 10), k=1)[0]
                else:
                    satisfaction = rng.choices((1, 2, 3, 4, 5), weights=(4, 6, 15, 35, 40), k=1)[0]
        records.append(
            (submitted, [channel, province, service, lang, subject, status, processing_days, satisfaction])
        )

    records.sort(key=lambda r: r[0])
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(
            [
                "request_id",
                "submitted_at",
                "channel",
                "province",
                "service",
                "language",
                "subject",
                "status",
                "processing_days",
                "satisfaction",
            ]
        )
        for i, (submitted, rest) in enumerate(records, start=1):
            row = [f"CS-2025-{i:06d}", submitted.isoformat(timespec="seconds"), *rest]
            writer.writerow(["" if v is None else v for v in row])


# --------------------------------------------------------------------------------------------------
# 2. Machine telemetry (SCADA export, ';' delimited)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Machine:
    machine_id: str
    line: str
    base_temp: float  # running temperature above ambient, degC
    vib_run: float  # mm/s RMS while running
    power_run: float  # kW while running
    power_idle: float
    units_per_min: tuple[int, int]


_MACHINES: tuple[_Machine, ...] = (
    *(
        _Machine(
            f"TX-LOOM-{i:02d}", "Tissage A" if i <= 3 else "Tissage B", 14.0 + 0.6 * i, 3.1, 8.2, 1.3, (0, 3)
        )
        for i in range(1, 7)
    ),
    *(
        _Machine(f"AP-PRESS-{i:02d}", "Emboutissage", 27.0 + 1.5 * i, 5.4, 41.0, 6.5, (8, 14))
        for i in range(1, 4)
    ),
)
_TELEMETRY_START = date(2025, 11, 17)  # a Monday
_TELEMETRY_DAYS = 3
_SHIFT_START_MIN = 6 * 60
_SHIFT_END_MIN = 20 * 60  # exclusive: two 7-hour shifts


def _ambient(minute_of_day: int) -> float:
    """Workshop ambient temperature: ~22 degC at dawn, ~30 degC mid-afternoon."""
    return 26.0 + 4.0 * math.sin(2 * math.pi * (minute_of_day / 60.0 - 9.0) / 24.0)


def _episodes(rng: random.Random, n: int, n_minutes: int, min_len: int, max_len: int) -> list[range]:
    out: list[range] = []
    while len(out) < n:
        length = rng.randint(min_len, max_len)
        start = rng.randrange(30, n_minutes - length - 30)
        cand = range(start, start + length)
        if all(cand.stop + 20 < r.start or r.stop + 20 < cand.start for r in out):
            out.append(cand)
    return out


def _write_machine_telemetry(path: Path, rng: random.Random) -> None:
    per_day = _SHIFT_END_MIN - _SHIFT_START_MIN
    n_minutes = per_day * _TELEMETRY_DAYS
    # Overheating episodes: (machine index, start minute index, duration); each followed by maintenance.
    overheat: dict[int, list[tuple[int, int]]] = {}
    hot_machines = rng.sample(range(len(_MACHINES)), 3)
    for k, m_idx in enumerate(hot_machines):
        day = k % _TELEMETRY_DAYS
        start = day * per_day + rng.randrange(5 * 60, per_day - 3 * 60)  # afternoon-ish, not at shift start
        overheat.setdefault(m_idx, []).append((start, rng.randint(25, 45)))

    rows: list[tuple[int, int, list[str]]] = []
    for m_idx, m in enumerate(_MACHINES):
        idle = _episodes(rng, 4, n_minutes, 5, 35)  # changeovers, waiting for material
        maint = _episodes(rng, 1, n_minutes, 40, 90)  # planned maintenance
        gaps = _episodes(rng, 3, n_minutes, 2, 40)  # SCADA link drops: rows are missing
        maint_until = -1
        hot = overheat.get(m_idx, [])
        temp = _ambient(_SHIFT_START_MIN) + 2.0
        for t in range(n_minutes):
            day, minute = divmod(t, per_day)
            minute_of_day = _SHIFT_START_MIN + minute
            if minute == 0:  # machines cooled down overnight
                temp = _ambient(minute_of_day) + rng.uniform(0.5, 2.5)
            ambient = _ambient(minute_of_day)
            extra = 0.0
            for start, length in hot:
                if start <= t < start + length:
                    extra = 32.0 * min(1.0, (t - start + 1) / (0.6 * length))
                elif t == start + length:
                    maint_until = t + rng.randint(30, 60)

            if t < maint_until or any(t in r for r in maint):
                status = "MAINT"
            elif extra and temp > ambient + m.base_temp + 10.0:  # SCADA high-temperature alarm
                status = "ALARM"
            elif any(t in r for r in idle):
                status = "IDLE"
            else:
                status = "RUN"

            if status == "RUN" or status == "ALARM":
                target = ambient + m.base_temp + extra
                vib = m.vib_run * rng.uniform(0.85, 1.15) + (extra / 32.0) * 6.0
                power = m.power_run * rng.uniform(0.92, 1.08) * (1.0 + extra / 100.0)
                lo, hi = m.units_per_min
                units = rng.randint(lo, hi) if status == "RUN" else rng.randint(0, max(0, lo // 2))
            elif status == "IDLE":
                target = ambient + m.base_temp * 0.45
                vib = rng.uniform(0.2, 0.5)
                power = m.power_idle * rng.uniform(0.9, 1.1)
                units = 0
            else:  # MAINT: stopped and locked out
                target = ambient
                vib = rng.uniform(0.0, 0.08)
                power = rng.uniform(0.0, 0.3)
                units = 0
            temp += (target - temp) * (0.25 if extra else 0.08) + rng.gauss(0.0, 0.25)

            if any(t in g for g in gaps):
                continue
            ts = datetime.combine(_TELEMETRY_START + timedelta(days=day), datetime.min.time())
            ts += timedelta(minutes=minute_of_day)
            vib_text = "" if rng.random() < 0.002 else f"{vib:.2f}"  # occasional missing sensor value
            rows.append(
                (
                    t,
                    m_idx,
                    [
                        ts.isoformat(timespec="seconds"),
                        m.machine_id,
                        m.line,
                        f"{temp:.1f}",
                        vib_text,
                        f"{power:.2f}",
                        status,
                        str(units),
                    ],
                )
            )

    rows.sort(key=lambda r: (r[0], r[1]))
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";", lineterminator="\n")
        writer.writerow(
            [
                "ts",
                "machine_id",
                "line",
                "temperature_c",
                "vibration_mm_s",
                "power_kw",
                "status",
                "units_produced",
            ]
        )
        writer.writerows(r[2] for r in rows)


# --------------------------------------------------------------------------------------------------
# 3. Communes (NDJSON)
# --------------------------------------------------------------------------------------------------


def _write_communes(path: Path) -> None:
    province_ar = {p[0]: p[1] for p in _PROVINCES}
    province_code: dict[str, int] = {}
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for name_fr, name_ar, province, kind, population, area in _COMMUNES:
            province_code[province] = province_code.get(province, 0) + 1
            record = {
                "code": f"CS-{PROVINCES.index(province) + 1:02d}-{province_code[province]:02d}",
                "name_fr": name_fr,
                "name_ar": name_ar,
                "province": province,
                "province_ar": province_ar[province],
                "commune_type": kind,
                "population": population,
                "area_km2": area,
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------------
# 4. Supplier register (Windows-1256)
# --------------------------------------------------------------------------------------------------

_SUPPLIER_PLACES: tuple[tuple[str, str], ...] = (
    ("Atlas", "الأطلس"),
    ("Chaouia", "الشاوية"),
    ("Doukkala", "دكالة"),
    ("Anfa", "أنفا"),
    ("Zenata", "زناتة"),
    ("Al Amal", "الأمل"),
    ("Nour", "النور"),
    ("Oum Er-Rbia", "أم الربيع"),
    ("Sahel", "الساحل"),
    ("Tensift", "تانسيفت"),
    ("Majd", "المجد"),
    ("Bouskoura", "بوسكورة"),
    ("Al Wafa", "الوفاء"),
    ("Ennasr", "النصر"),
)
# secteur -> (French activities, Arabic activities)
_SUPPLIER_SECTORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Textile": (("Textiles", "Filature", "Confection"), ("للنسيج", "للغزل", "للخياطة")),
    "Pièces automobiles": (("Auto Pièces", "Câblage", "Emboutissage"), ("لقطع الغيار", "للأسلاك", "للتشكيل")),
    "BTP": (("Travaux", "Construction", "Génie Civil"), ("للأشغال", "للبناء", "للهندسة المدنية")),
    "Agroalimentaire": (("Agro", "Conserves", "Laiterie"), ("للصناعات الغذائية", "للمصبرات", "للحليب")),
    "Informatique": (
        ("Informatique", "Digital Services", "Systèmes"),
        ("للإعلاميات", "للخدمات الرقمية", "للأنظمة"),
    ),
    "Transport & logistique": (
        ("Transport", "Logistique", "Messagerie"),
        ("للنقل", "للوجستيك", "للإرساليات"),
    ),
    "Fournitures de bureau": (
        ("Bureautique", "Papeterie", "Fournitures"),
        ("للمكتبيات", "للورق", "للتوريدات"),
    ),
    "Nettoyage": (("Nettoyage", "Propreté", "Hygiène Services"), ("للتنظيف", "للنظافة", "لخدمات الصحة")),
}
_SECTOR_WEIGHTS = (16, 14, 14, 10, 12, 12, 12, 10)
_SUPPLIER_CITIES: tuple[tuple[str, int], ...] = (
    ("الدار البيضاء", 40),
    ("المحمدية", 8),
    ("الجديدة", 6),
    ("سطات", 6),
    ("برشيد", 7),
    ("بنسليمان", 2),
    ("سيدي بنور", 2),
    ("مديونة", 3),
    ("النواصر", 6),
    ("الرباط", 8),
    ("طنجة", 5),
    ("فاس", 3),
    ("مراكش", 3),
    ("أكادير", 2),
)
_FAMILY_NAMES: tuple[str, ...] = (
    "Bennani",
    "El Alaoui",
    "Tazi",
    "Berrada",
    "Lahlou",
    "Chraïbi",
    "Benjelloun",
    "El Fassi",
    "Sqalli",
    "Bouzidi",
)
_N_SUPPLIERS = 200
_FIRST_CREATION = date(1978, 1, 1)
_LAST_CREATION = date(2024, 12, 31)


def _ice(rng: random.Random, used: set[str]) -> str:
    """A 15-digit ICE: 9-digit company number, 4-digit establishment, 2-digit key (number % 97 == 0)."""
    while True:
        company = rng.randrange(1_000_000, 100_000_000)  # 9 digits once zero-padded: leading "00"/"0"
        establishment = rng.choice((0, 0, 0, 1, 2, 3))
        base = company * 10_000 + establishment  # 13 digits
        key = (97 - (base * 100) % 97) % 97
        ice = f"{base * 100 + key:015d}"
        if ice not in used:
            used.add(ice)
            return ice


def _company_name(rng: random.Random, sector: str, arabic: bool) -> str:
    place_fr, place_ar = rng.choice(_SUPPLIER_PLACES)
    acts_fr, acts_ar = _SUPPLIER_SECTORS[sector]
    i = rng.randrange(len(acts_fr))
    if arabic:
        form = rng.choice(("ش.م.م", "ش.م.م", "ش.م", "ش.م.م ذات الشريك الوحيد"))
        return f"شركة {place_ar} {acts_ar[i]} {form}"
    form = rng.choice(("SARL", "SARL", "SA", "SARL AU"))
    if rng.random() < 0.15:
        return f"{rng.choice(_FAMILY_NAMES)} & Fils, {acts_fr[i]} {form}"
    if rng.random() < 0.5:
        return f"{acts_fr[i]} {place_fr} {form}"
    return f"Société {place_fr} {acts_fr[i]} {form}"


def _write_suppliers(path: Path, rng: random.Random) -> None:
    sectors = list(_SUPPLIER_SECTORS)
    used_ice: set[str] = set()
    used_names: set[str] = set()
    rows: list[list[str]] = []
    while len(rows) < _N_SUPPLIERS:
        sector = rng.choices(sectors, weights=_SECTOR_WEIGHTS, k=1)[0]
        name = _company_name(rng, sector, arabic=rng.random() < 0.55)
        if name in used_names:
            continue
        used_names.add(name)
        created = _FIRST_CREATION + timedelta(days=rng.randrange((_LAST_CREATION - _FIRST_CREATION).days))
        is_sa = name.endswith((" SA", " ش.م"))
        capital = rng.choice(
            (300_000, 1_000_000, 3_000_000, 10_000_000)
            if is_sa
            else (10_000, 10_000, 50_000, 100_000, 100_000, 200_000, 500_000, 1_000_000)
        )
        rows.append(
            [
                _ice(rng, used_ice),
                name,
                _weighted(rng, _SUPPLIER_CITIES),
                sector,
                created.isoformat(),
                str(capital),
            ]
        )

    with path.open("w", encoding="cp1256", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(["ice", "raison_sociale", "ville_ar", "secteur", "date_creation", "capital_mad"])
        writer.writerows(rows)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def write_demo_files(directory: Path, *, seed: int = 2030) -> list[DemoDataset]:
    """Write the four demo files into ``directory`` (created if needed) and describe them.

    The output is a pure function of ``seed``: the same seed always yields byte-identical files.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def rng_for(stream: int) -> random.Random:
        return random.Random(seed * 16 + stream)

    requests = directory / "citizen_requests.csv"
    telemetry = directory / "machine_telemetry.csv"
    communes = directory / "communes.json"
    suppliers = directory / "suppliers_ar_cp1256.csv"
    _write_citizen_requests(requests, rng_for(1))
    _write_machine_telemetry(telemetry, rng_for(2))
    _write_communes(communes)
    _write_suppliers(suppliers, rng_for(4))

    return [
        DemoDataset(
            name="citizen_requests",
            path=requests,
            description="Demandes des citoyens — citizen service requests, Casablanca-Settat, 2025",
            owner="data-team@region-cs.ma",
        ),
        DemoDataset(
            name="machine_telemetry",
            path=telemetry,
            description="Télémétrie machines (SCADA) — per-minute telemetry, textile & auto-parts plant",
            owner="maintenance@atlas-textiles.ma",
        ),
        DemoDataset(
            name="communes",
            path=communes,
            description="Communes de la région — Casablanca-Settat communes, approximate population & area",
            owner="data-team@region-cs.ma",
        ),
        DemoDataset(
            name="suppliers",
            path=suppliers,
            description="Registre des fournisseurs — سجل الموردين, supplier register (Windows-1256)",
            owner="achats@region-cs.ma",
        ),
    ]
