"""A population of users with stable attributes: home country and city, device, OS, browser, UA."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

# (country, weight, cities, IPv4 networks the simulator draws the user's address from). The networks
# are the country's own in the IP database the ingest enriches with (geoip2fast's GeoLite2 country
# data), so an address's looked-up country agrees with the declared one; a unit test checks them.
COUNTRIES = [
    ("US", 30, ["New York", "Los Angeles", "Chicago", "Houston", "Seattle"],
     ["3.3.0.0/16", "66.10.0.0/16", "136.146.0.0/16", "162.6.0.0/15"]),
    ("GB", 9, ["London", "Manchester", "Birmingham", "Leeds"],
     ["2.24.0.0/13", "79.77.0.0/16", "135.240.0.0/16", "158.124.0.0/15"]),
    ("DE", 9, ["Berlin", "Munich", "Hamburg", "Cologne"],
     ["2.160.0.0/12", "86.103.0.0/16", "132.230.0.0/15", "151.189.0.0/16"]),
    ("FR", 7, ["Paris", "Lyon", "Marseille", "Toulouse"],
     ["2.3.0.0/16", "85.168.0.0/14", "98.66.0.0/16", "156.118.0.0/16"]),
    ("IN", 10, ["Mumbai", "Bengaluru", "Delhi", "Chennai"],
     ["1.6.0.0/15", "47.29.0.0/16", "117.96.0.0/14", "137.97.0.0/16"]),
    ("BR", 6, ["Sao Paulo", "Rio de Janeiro", "Brasilia"],
     ["4.160.0.0/16", "177.138.0.0/15", "187.88.0.0/13", "200.18.0.0/15"]),
    ("JP", 6, ["Tokyo", "Osaka", "Nagoya"],
     ["1.5.0.0/16", "111.236.0.0/14", "134.237.0.0/16", "163.46.0.0/16"]),
    ("CA", 5, ["Toronto", "Vancouver", "Montreal"],
     ["3.96.0.0/14", "128.43.0.0/16", "142.76.0.0/16", "163.155.0.0/16"]),
    ("AU", 4, ["Sydney", "Melbourne", "Brisbane"],
     ["1.40.0.0/14", "118.208.0.0/14", "139.230.0.0/16", "159.52.0.0/16"]),
    ("ES", 4, ["Madrid", "Barcelona", "Valencia"],
     ["2.136.0.0/13", "80.28.0.0/14", "90.71.0.0/16", "158.42.0.0/16"]),
    ("NL", 3, ["Amsterdam", "Rotterdam", "Utrecht"],
     ["4.175.0.0/16", "81.204.0.0/14", "134.27.0.0/16", "145.192.0.0/12"]),
    ("SE", 2, ["Stockholm", "Gothenburg"],
     ["2.0.0.0/15", "83.209.0.0/16", "137.58.0.0/16", "159.38.0.0/16"]),
    ("MX", 3, ["Mexico City", "Guadalajara", "Monterrey"],
     ["131.178.0.0/16", "170.25.0.0/16", "187.254.0.0/16", "201.112.0.0/13"]),
    ("PL", 2, ["Warsaw", "Krakow"],
     ["5.173.0.0/16", "79.185.0.0/16", "89.66.0.0/15", "157.25.0.0/16"]),
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

# Search and SEO crawlers, which announce themselves: (os, browser, user agent, weight). A few of
# the population's users are crawlers, so a demo day has bot traffic for the ingest to flag.
CRAWLERS = [
    ("Other", "Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 50),
    ("Other", "bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 25),
    ("Other", "AhrefsBot", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", 15),
    ("Linux", "HeadlessChrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
     "Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", 10),
]
CRAWLER_SHARE = 0.03


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
        country, _, cities, networks = rng.choices(countries, country_weights)[0]
        device_type, _, variants = rng.choices(DEVICES, device_weights)[0]
        os_name, browser, agent, _ = rng.choices(variants, [v[3] for v in variants])[0]
        if rng.random() < CRAWLER_SHARE:
            device_type = "desktop"  # the contract knows people's devices only
            os_name, browser, agent, _ = rng.choices(CRAWLERS, [c[3] for c in CRAWLERS])[0]
        ip = _address_in(rng, rng.choice(networks))
        users.append(
            User(
                user_id=f"u{index:07d}",
                country=country,
                geo={"country": country, "city": rng.choice(cities), "ip": ip},
                device={"type": device_type, "os": os_name, "browser": browser, "user_agent": agent},
            )
        )
    return users


def _address_in(rng: random.Random, network: str) -> str:
    """A host address drawn from an IPv4 network ("2.24.0.0/13"), never its first or last."""
    net = ipaddress.IPv4Network(network)
    return str(net.network_address + rng.randrange(1, net.num_addresses - 1))
