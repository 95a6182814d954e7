"""A population of users with stable attributes: home country and city, device, OS, browser, UA."""

from __future__ import annotations

import random
from dataclasses import dataclass

# (country, weight, cities, first octet of the IP block the simulator draws from)
COUNTRIES = [
    ("US", 30, ["New York", "Los Angeles", "Chicago", "Houston", "Seattle"], 23),
    ("GB", 9, ["London", "Manchester", "Birmingham", "Leeds"], 51),
    ("DE", 9, ["Berlin", "Munich", "Hamburg", "Cologne"], 46),
    ("FR", 7, ["Paris", "Lyon", "Marseille", "Toulouse"], 62),
    ("IN", 10, ["Mumbai", "Bengaluru", "Delhi", "Chennai"], 49),
    ("BR", 6, ["Sao Paulo", "Rio de Janeiro", "Brasilia"], 177),
    ("JP", 6, ["Tokyo", "Osaka", "Nagoya"], 126),
    ("CA", 5, ["Toronto", "Vancouver", "Montreal"], 99),
    ("AU", 4, ["Sydney", "Melbourne", "Brisbane"], 101),
    ("ES", 4, ["Madrid", "Barcelona", "Valencia"], 88),
    ("NL", 3, ["Amsterdam", "Rotterdam", "Utrecht"], 145),
    ("SE", 2, ["Stockholm", "Gothenburg"], 78),
    ("MX", 3, ["Mexico City", "Guadalajara", "Monterrey"], 187),
    ("PL", 2, ["Warsaw", "Krakow"], 83),
]

# (device type, weight, [(os, browser, user agent, weight)])
DEVICES = [
    ("mobile", 55, [
        ("Android", "Chrome", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", 55),
        ("iOS", "Safari", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", 40),
        ("Android", "Samsung Internet", "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 "
         "(KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", 5),
    ]),
    ("desktop", 38, [
        ("Windows", "Chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 50),
        ("macOS", "Safari", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/18.1 Safari/605.1.15", 20),
        ("Windows", "Edge", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", 15),
        ("Linux", "Firefox", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 15),
    ]),
    ("tablet", 7, [
        ("iPadOS", "Safari", "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", 70),
        ("Android", "Chrome", "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 30),
    ]),
]


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    country: str
    geo: dict  # shared, pre-built nested objects: built once per user, reused by every event
    device: dict


def build_population(size: int, seed: int) -> list[User]:
    rng = random.Random(f"population:{seed}")
    countries = [c for c in COUNTRIES]
    country_weights = [c[1] for c in COUNTRIES]
    device_weights = [d[1] for d in DEVICES]
    users = []
    for index in range(size):
        country, _, cities, octet = rng.choices(countries, country_weights)[0]
        device_type, _, variants = rng.choices(DEVICES, device_weights)[0]
        os_name, browser, agent, _ = rng.choices(variants, [v[3] for v in variants])[0]
        ip = f"{octet}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        users.append(
            User(
                user_id=f"u{index:07d}",
                country=country,
                geo={"country": country, "city": rng.choice(cities), "ip": ip},
                device={"type": device_type, "os": os_name, "browser": browser, "user_agent": agent},
            )
        )
    return users
