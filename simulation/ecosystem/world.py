"""The static world: cities, businesses, locations, services, people and who is whose customer.

Everything is drawn from one `numpy.random.Generator`, in a fixed order, so a seed fixes
the world. People are the unit of identity (one phone each); a *relationship* is a
person being a customer of one business (a CRM customer record). About 45% of people
are customers of more than one business (ecosystem overlap), ~1.6 businesses per person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# ---------------------------------------------------------------------------- constants


@dataclass(frozen=True)
class City:
    name: str
    country: str
    timezone: str
    currency: str
    weight: float
    streets: tuple[str, ...]


CITIES: tuple[City, ...] = (
    City(
        "Москва", "RU", "Europe/Moscow", "RUB", 30, ("ул. Тверская", "Пятницкая ул.", "ул. Арбат")
    ),
    City("Алматы", "KZ", "Asia/Almaty", "KZT", 9, ("пр. Абая", "ул. Панфилова", "пр. Достык")),
    City("Berlin", "DE", "Europe/Berlin", "EUR", 3, ("Torstraße", "Kastanienallee", "Sonnenallee")),
    City("Санкт-Петербург", "RU", "Europe/Moscow", "RUB", 14, ("Невский пр.", "ул. Рубинштейна")),
    City("Екатеринбург", "RU", "Asia/Yekaterinburg", "RUB", 7, ("ул. Ленина", "ул. Малышева")),
    City("Астана", "KZ", "Asia/Almaty", "KZT", 6, ("пр. Мангилик Ел", "ул. Кенесары")),
    City("Казань", "RU", "Europe/Moscow", "RUB", 6, ("ул. Баумана", "ул. Пушкина")),
    City("Новосибирск", "RU", "Asia/Novosibirsk", "RUB", 6, ("Красный пр.", "ул. Ленина")),
)
COUNTRIES = ("RU", "KZ", "DE")

#: kind → (mean days between visits, share of booked visits that are completed,
#: services as (Russian name, German name, category, base price in RUB, minutes)).
KINDS: dict[str, tuple[float, float, tuple[tuple[str, str, str, int, int], ...]]] = {
    "salon": (
        24,
        0.86,
        (
            ("Маникюр", "Maniküre", "nails", 2000, 60),
            ("Педикюр", "Pediküre", "nails", 2500, 75),
            ("Женская стрижка", "Damenhaarschnitt", "hair", 2500, 60),
            ("Окрашивание", "Färben", "hair", 6000, 150),
            ("Укладка", "Styling", "hair", 1800, 45),
        ),
    ),
    "barbershop": (
        21,
        0.88,
        (
            ("Мужская стрижка", "Herrenhaarschnitt", "haircut", 1500, 45),
            ("Стрижка бороды", "Bartpflege", "beard", 900, 30),
            ("Стрижка + борода", "Haarschnitt + Bart", "haircut", 2200, 75),
            ("Детская стрижка", "Kinderhaarschnitt", "haircut", 1000, 30),
            ("Королевское бритьё", "Nassrasur", "beard", 1800, 45),
        ),
    ),
    "clinic": (
        55,
        0.90,
        (
            ("Консультация терапевта", "Allgemeinarzt", "consultation", 2500, 30),
            ("УЗИ", "Ultraschall", "diagnostics", 3000, 30),
            ("Анализ крови", "Blutbild", "lab", 1200, 15),
            ("Профессиональная чистка зубов", "Zahnreinigung", "dental", 5000, 60),
        ),
    ),
    "restaurant": (
        7,
        0.92,
        (
            ("Бизнес-ланч", "Mittagsmenü", "lunch", 650, 45),
            ("Ужин", "Abendessen", "dinner", 2500, 90),
            ("Завтрак", "Frühstück", "breakfast", 800, 45),
        ),
    ),
    "grooming": (
        30,
        0.87,
        (
            ("Стрижка собаки", "Hundeschur", "dog", 3000, 90),
            ("Мытьё", "Waschen", "dog", 1500, 45),
            ("Стрижка когтей", "Krallenpflege", "nails", 600, 15),
            ("Груминг кошки", "Katzenpflege", "cat", 3500, 90),
        ),
    ),
    "hookah": (
        9,
        0.85,
        (
            ("Кальян классический", "Shisha klassisch", "hookah", 1500, 90),
            ("Кальян премиум", "Shisha premium", "hookah", 2500, 120),
            ("Чайная церемония", "Teezeremonie", "tea", 800, 60),
        ),
    ),
}
KIND_NAMES = tuple(KINDS)
KIND_LABEL = {
    "salon": ("Салон красоты", "Beauty Salon"),
    "barbershop": ("Барбершоп", "Barbershop"),
    "clinic": ("Клиника", "Praxis"),
    "restaurant": ("Ресторан", "Restaurant"),
    "grooming": ("Груминг", "Hundesalon"),
    "hookah": ("Кальянная", "Shisha Lounge"),
}
BRANDS_RU = (
    "Лайм",
    "Борода",
    "Север",
    "Мята",
    "Эклер",
    "Точка",
    "Бархат",
    "Соль",
    "Янтарь",
    "Лофт",
)
BRANDS_DE = ("Kiez", "Spree", "Linde", "Mitte", "Nord", "Blau")

#: price multiplier and rounding step (minor units) per currency, from a RUB base price
CURRENCY_PRICE = {"RUB": (1.0, 5000), "KZT": (5.5, 50000), "EUR": (0.011, 50)}

FIRST = {
    ("ru", "m"): "Иван Алексей Дмитрий Сергей Андрей Михаил Никита Артём Павел Егор Роман Олег",
    ("ru", "f"): "Анна Мария Елена Ольга Наталья Дарья Ксения Алина Полина Юлия Ирина Светлана",
    ("kz", "m"): "Нурлан Ерлан Асхат Данияр Бауыржан Айдар Тимур Ержан Санжар Арман",
    ("kz", "f"): "Айгерим Динара Жанар Асель Гульнара Камила Сауле Мадина Аружан Томирис",
    ("de", "m"): "Lukas Jonas Felix Maximilian Paul Leon Tobias Jan Niklas Mehmet",
    ("de", "f"): "Anna Lena Marie Sophie Laura Julia Hannah Lea Sarah Elif",
    ("ru_lat", "m"): "Ivan Alexey Dmitry Sergey Andrey Mikhail Nikita Artem Pavel Egor Roman Oleg",
    ("ru_lat", "f"): "Anna Maria Elena Olga Natalia Daria Ksenia Alina Polina Yulia Irina Svetlana",
}
LAST = {
    ("ru", "m"): "Иванов Смирнов Кузнецов Попов Соколов Лебедев Козлов Новиков Морозов Волков",
    (
        "ru",
        "f",
    ): "Иванова Смирнова Кузнецова Попова Соколова Лебедева Козлова Новикова Морозова Волкова",
    (
        "kz",
        "m",
    ): "Нурланов Ахметов Садыков Жаксылыков Омаров Касымов Султанов Абенов Искаков Жумабаев",
    ("kz", "f"): "Нурланова Ахметова Садыкова Жаксылыкова Омарова Касымова Султанова Абенова "
    "Искакова Жумабаева",
    ("de", "m"): "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Yılmaz",
    ("de", "f"): "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Yılmaz",
    ("ru_lat", "m"): "Ivanov Smirnov Kuznetsov Popov Sokolov Lebedev Kozlov Novikov Morozov Volkov",
    (
        "ru_lat",
        "f",
    ): "Ivanova Smirnova Kuznetsova Popova Sokolova Lebedeva Kozlova Novikova Morozova Volkova",
}
NAME_POOL = 12  # names per (culture, gender); lists shorter than this wrap around

# 930 is left out: libphonenumber rejects some of its sub-ranges (+7 930 0…), and people's
# own numbers must be valid (invalid spellings are made on purpose, and recorded)
RU_MOBILE = np.setdiff1d(np.arange(900, 1000), [930])
KZ_MOBILE = np.array([700, 701, 702, 705, 707, 708, 747, 771, 775, 776, 777, 778])
DE_MOBILE = np.array([151, 152, 157, 159, 170, 171, 172, 173, 174, 175, 176, 177, 178, 179])

# Spellings of +7 numbers (national number NNN XXX YY ZZ) and of German mobiles (PPP SSSSSSSS).
RU_FORMATS = (
    ("8 ({a}) {b}-{c}-{d}", 0.22),
    ("+7 {a} {b} {c} {d}", 0.18),
    ("7{a}{b}{c}{d}", 0.12),
    ("8-{a}-{b}-{c}{d}", 0.10),
    ("+7({a}){b}{c}{d}", 0.10),
    ("+7{a}{b}{c}{d}", 0.14),
    ("8{a}{b}{c}{d}", 0.10),
    ("{a}{b}{c}{d}", 0.04),
)
DE_FORMATS = (
    ("+49 {p} {s}", 0.35),
    ("0{p} {s}", 0.30),
    ("0{p}/{s}", 0.10),
    ("+49 (0){p} {s}", 0.10),
    ("0049{p}{s}", 0.05),
    ("+49{p}{s}", 0.10),
)
#: share of people who are also customers of a 2nd and of a 3rd business (ecosystem overlap)
EXTRA_BUSINESS_SHARES = (0.45, 0.18)
#: how invalid phone spellings are made (kind, share of the invalid ones)
INVALID_KINDS = ("too_short", "letters", "wrong_prefix")


# ---------------------------------------------------------------------------- drawing


def make_businesses(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """`n` businesses; the first six cover every kind, Russia, Kazakhstan and Berlin (DST)."""
    weights = np.array([c.weight for c in CITIES], dtype=float)
    city = rng.choice(len(CITIES), size=n, p=weights / weights.sum())
    kind = rng.integers(0, len(KIND_NAMES), size=n)
    head = min(n, 6)
    city[:head] = np.arange(head)  # Moscow, Almaty, Berlin, St Petersburg, Yekaterinburg, Astana
    kind[:head] = np.arange(head)
    rows = []
    for i in range(n):
        c = CITIES[city[i]]
        k = KIND_NAMES[kind[i]]
        de = c.country == "DE"
        label = KIND_LABEL[k][1 if de else 0]
        brand = (BRANDS_DE if de else BRANDS_RU)[int(rng.integers(0, 6 if de else 10))]
        rows.append(
            {
                "idx": i,
                "id": f"B{i + 1:05d}",
                "name": f"{label} {brand} {i + 1}" if de else f"{label} «{brand}» #{i + 1}",
                "kind": k,
                "country": c.country,
                "city": c.name,
                "city_idx": int(city[i]),
                "timezone": c.timezone,
                "currency": c.currency,
                # market share inside the city: a few big businesses, many small ones
                "size": float(rng.lognormal(0.0, 0.8)),
            }
        )
    return pd.DataFrame(rows)


def make_locations_services(
    rng: np.random.Generator, businesses: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    locs, svcs = [], []
    for b in businesses.itertuples():
        city = CITIES[b.city_idx]
        for j in range(1 + int(rng.random() < 0.3) + int(rng.random() < 0.1)):
            street = city.streets[int(rng.integers(0, len(city.streets)))]
            locs.append(
                {
                    "business_idx": b.idx,
                    "id": f"L{len(locs) + 1:06d}",
                    "business_id": b.id,
                    "name": f"{b.name} — {j + 1}",
                    "city": b.city,
                    "address": f"{street}, {int(rng.integers(1, 120))}",
                    "timezone": b.timezone,
                }
            )
        mult, step = CURRENCY_PRICE[b.currency]
        for ru, de, cat, base, minutes in KINDS[b.kind][2]:
            price = base * 100 * mult * rng.uniform(0.8, 1.35)
            price_minor = max(step, round(price / step) * step)
            svcs.append(
                {
                    "business_idx": b.idx,
                    "id": f"S{len(svcs) + 1:07d}",
                    "business_id": b.id,
                    "name": de if b.country == "DE" else ru,
                    "category": cat,
                    "price_minor": price_minor,
                    "currency": b.currency,
                    "duration_min": minutes,
                }
            )
    return pd.DataFrame(locs), pd.DataFrame(svcs)


def make_persons(
    rng: np.random.Generator, n: int, businesses: pd.DataFrame, as_of_day: int
) -> pd.DataFrame:
    """People with a home city (where businesses are), phone, name, gender and birthday.

    `as_of_day` is the epoch day of `as_of`; birthdays are epoch days (-1 unknown).
    """
    per_city = businesses.groupby("city_idx")["size"].sum()
    cities = per_city.index.to_numpy()
    city = rng.choice(cities, size=n, p=(per_city / per_city.sum()).to_numpy())
    country = np.array([COUNTRIES.index(CITIES[c].country) for c in range(len(CITIES))])[city]

    # unique national numbers: draw with a margin, keep the first occurrence of each
    national = np.empty(n, dtype=np.int64)
    for code, prefixes, sub_digits in ((0, RU_MOBILE, 7), (1, KZ_MOBILE, 7), (2, DE_MOBILE, 8)):
        idx = np.flatnonzero(country == code)
        if not len(idx):
            continue
        m = len(idx)
        cand = rng.choice(prefixes, size=2 * m + 10) * 10**sub_digits + rng.integers(
            0, 10**sub_digits, size=2 * m + 10
        )
        _, first = np.unique(cand, return_index=True)
        national[idx] = cand[np.sort(first)][:m]

    gender = rng.integers(0, 2, size=n)  # 0 f, 1 m
    culture = np.where(country == 1, 1, np.where(country == 2, 2, 0))  # ru, kz, de
    latin = (country == 0) & (rng.random(n) < 0.12)
    culture = np.where(latin, 3, culture)  # ru_lat
    age_days = (rng.uniform(18, 70, size=n) * 365.25).astype(np.int64)
    birthday = as_of_day - age_days
    # no 29 February birthdays: keeps the yearly birthday arithmetic simple
    bdate = birthday.astype("datetime64[D]")
    feb29 = (bdate.astype("datetime64[M]").astype(int) % 12 == 1) & (
        (bdate - bdate.astype("datetime64[M]")).astype(int) == 28
    )
    birthday[feb29] -= 1
    return pd.DataFrame(
        {
            "city_idx": city,
            "country": country,
            "national": national,
            "gender": gender,
            "culture": culture,
            "first_idx": rng.integers(0, NAME_POOL, size=n),
            "last_idx": rng.integers(0, NAME_POOL, size=n),
            "birthday": birthday,
            "birthday_known": rng.random(n) < 0.85,
            "gender_known": rng.random(n) < 0.95,
        }
    )


def assign_relationships(
    rng: np.random.Generator, persons: pd.DataFrame, businesses: pd.DataFrame
) -> pd.DataFrame:
    """(person, business) pairs: a primary business in the home city for everyone, a
    second one for ~45% and a third for ~18% (same city, or same country if the city has
    only one business)."""
    n = len(persons)
    city = persons["city_idx"].to_numpy()
    primary = np.empty(n, dtype=np.int64)
    pools: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for c in np.unique(city):
        pool = businesses.index[businesses["city_idx"] == c].to_numpy()
        if len(pool) < 2:
            country = CITIES[c].country
            pool = businesses.index[businesses["country"] == country].to_numpy()
        w = businesses.loc[pool, "size"].to_numpy()
        pools[int(c)] = (pool, w / w.sum())
        idx = np.flatnonzero(city == c)
        home = businesses.index[businesses["city_idx"] == c].to_numpy()
        hw = businesses.loc[home, "size"].to_numpy()
        primary[idx] = rng.choice(home, size=len(idx), p=hw / hw.sum())
    pairs = [np.stack([np.arange(n), primary], axis=1)]
    for share in EXTRA_BUSINESS_SHARES:
        extra = np.flatnonzero(rng.random(n) < share)
        choice = np.empty(len(extra), dtype=np.int64)
        for c in np.unique(city[extra]):
            sel = city[extra] == c
            pool, w = pools[int(c)]
            choice[sel] = rng.choice(pool, size=int(sel.sum()), p=w)
        pairs.append(np.stack([extra, choice], axis=1))
    allp = np.concatenate(pairs)
    # drop repeats of the same (person, business); keep the first (primary) occurrence
    key = allp[:, 0] * 1_000_000 + allp[:, 1]
    _, first = np.unique(key, return_index=True)
    allp = allp[np.sort(first)]
    rels = pd.DataFrame({"person": allp[:, 0], "business": allp[:, 1]})
    return rels


# ---------------------------------------------------------------------------- phones


def e164(persons: pd.DataFrame) -> pa.Array:
    """E.164 strings per person."""
    cc = np.where(persons["country"].to_numpy() == 2, "+49", "+7")
    nat = pc.cast(pa.array(persons["national"].to_numpy()), pa.string())
    return pc.binary_join_element_wise(pa.array(cc), nat, "")


def _slices(nat: pa.Array, cuts: dict[str, tuple[int, int]]) -> dict[str, pa.Array]:
    return {k: pc.utf8_slice_codeunits(nat, a, b) for k, (a, b) in cuts.items()}


def _render(template: str, parts: dict[str, pa.Array]) -> pa.Array:
    pieces: list[object] = []
    rest = template
    while rest:
        i = rest.find("{")
        if i < 0:
            pieces.append(rest)
            break
        if i:
            pieces.append(rest[:i])
        j = rest.index("}", i)
        pieces.append(parts[rest[i + 1 : j]])
        rest = rest[j + 1 :]
    # literal pieces are str scalars, which the kernel broadcasts
    return pc.binary_join_element_wise(*pieces, "")


def spell_phones(
    rng: np.random.Generator, country: np.ndarray, national: np.ndarray, invalid_share: float
) -> tuple[pa.Array, np.ndarray]:
    """Phone numbers as staff type them. Returns (spellings, invalid kind code: -1 valid,
    else an index into INVALID_KINDS)."""
    n = len(national)
    nat = pc.cast(pa.array(national), pa.string())
    out = np.empty(n, dtype=object)
    plus7 = np.flatnonzero(country != 2)
    de = np.flatnonzero(country == 2)
    for idx, formats, cuts in (
        (plus7, RU_FORMATS, {"a": (0, 3), "b": (3, 6), "c": (6, 8), "d": (8, 10)}),
        (de, DE_FORMATS, {"p": (0, 3), "s": (3, 11)}),
    ):
        if not len(idx):
            continue
        w = np.array([f[1] for f in formats])
        code = rng.choice(len(formats), size=len(idx), p=w / w.sum())
        parts = _slices(nat.take(pa.array(idx)), cuts)
        for k, (template, _) in enumerate(formats):
            sel = np.flatnonzero(code == k)
            if len(sel):
                sub = {key: arr.take(pa.array(sel)) for key, arr in parts.items()}
                out[idx[sel]] = _render(template, sub).to_numpy(zero_copy_only=False)
    invalid = np.full(n, -1, dtype=np.int64)
    bad = np.flatnonzero(rng.random(n) < invalid_share)
    kinds = rng.integers(0, len(INVALID_KINDS), size=len(bad))
    invalid[bad] = kinds
    for i, k in zip(bad.tolist(), kinds.tolist(), strict=True):
        s = str(out[i])
        if INVALID_KINDS[k] == "too_short":
            out[i] = s[:-4]
        elif INVALID_KINDS[k] == "letters":
            out[i] = ("нет номера", "не указан", "позвонить позже", "tel. ---")[i % 4]
        else:  # a prefix no mobile or fixed-line number has
            n_ = str(national[i])
            out[i] = (
                f"+7 (0{n_[1:3]}) {n_[3:6]}-{n_[6:8]}-{n_[8:10]}"
                if country[i] != 2
                else (f"+49 00{n_[1:3]} {n_[3:]}")
            )
    return pa.array(out, pa.string()), invalid
