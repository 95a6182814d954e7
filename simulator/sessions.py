"""One visit to the shop: a walk over the page graph home -> category -> product -> cart -> checkout
-> purchase, with searches, clicks, scrolls and exits along the way, and log-normal dwell times.

A walk returns event steps strictly ordered in event time; the caller attaches ids and the user.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from itertools import accumulate

SITE = "https://shop.example.com"
CATEGORIES = ["shoes", "jackets", "shirts", "trousers", "bags", "watches", "hats", "socks",
              "dresses", "sportswear", "accessories", "outlet"]
PRODUCTS = 600
# Zipf-like popularity: a few products draw most of the views, as in real shops.
_PRODUCT_CUM = list(accumulate(1 / (rank + 1) ** 0.9 for rank in range(PRODUCTS)))
_PRODUCT_TOTAL = _PRODUCT_CUM[-1]
SEARCH_TERMS = ["running shoes", "rain jacket", "linen shirt", "leather bag", "smart watch",
                "wool socks", "summer dress", "chinos", "backpack", "sunglasses", "gift card"]

# (source, medium, campaign, weight): a quarter of sessions arrive through a campaign.
CAMPAIGNS = [
    ("google", "cpc", "black_friday", 10),
    ("facebook", "social", "winter_sale", 6),
    ("newsletter", "email", "weekly_digest", 5),
    ("instagram", "social", "new_arrivals", 4),
]
_CAMPAIGN_REFERRERS = {"google": "https://www.google.com/", "facebook": "https://www.facebook.com/",
                       "newsletter": None, "instagram": "https://www.instagram.com/"}
ORGANIC_REFERRERS = ["https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/"]

# Next page after each page, with probabilities; "exit" ends the session.
TRANSITIONS = {
    "home": [("category", .50), ("search", .18), ("product", .07), ("exit", .25)],
    "category": [("product", .58), ("category", .10), ("search", .08), ("home", .04), ("exit", .20)],
    "search": [("product", .60), ("search", .10), ("category", .05), ("exit", .25)],
    "product": [("add_to_cart", .22), ("product", .18), ("category", .17), ("search", .06),
                ("exit", .37)],
    "added": [("cart", .50), ("product", .20), ("category", .15), ("exit", .15)],
    "cart": [("checkout", .50), ("remove_from_cart", .10), ("product", .15), ("exit", .25)],
    "removed": [("cart", .40), ("product", .30), ("exit", .30)],
    "checkout": [("purchase", .62), ("exit", .38)],
}
_NEXT = {state: ([s for s, _ in options], list(accumulate(p for _, p in options)))
         for state, options in TRANSITIONS.items()}

MAX_PAGES = 40
DWELL_MEDIAN_S = 25.0
DWELL_SIGMA = 0.9
DWELL_CAP_S = 900.0


def product_price(product: int) -> float:
    return round(9.99 + (product * 37 % 190) + 0.49 * (product % 2), 2)


def walk_session(rng: random.Random, start_ms: int, *, max_events: int = 10**9):
    """Return (campaign, steps); each step is (ts_ms, event_type, url, referrer, properties)."""
    campaign, referrer, landing = _arrival(rng)
    steps: list[tuple] = []
    now = start_ms
    state = landing
    page_url = ""
    cart: list[int] = []
    product = 0
    pages = 0
    mu = math.log(DWELL_MEDIAN_S)

    def emit(event_type, url, ref, props):
        steps.append((now, event_type, url, ref, props))

    while len(steps) < max_events:
        # Land on the page: one page_view, then interaction during the dwell time.
        if state in ("category", "home", "search", "product", "cart", "checkout", "purchase"):
            props: dict = {}
            if state == "home":
                url = SITE + "/"
            elif state == "category":
                url = f"{SITE}/c/{rng.choice(CATEGORIES)}"
            elif state == "search":
                term = rng.choice(SEARCH_TERMS)
                url = f"{SITE}/search?q={term.replace(' ', '+')}"
            elif state == "product":
                product = bisect(_PRODUCT_CUM, rng.random() * _PRODUCT_TOTAL)
                url = f"{SITE}/p/{product:05d}"
                props = {"product_id": f"P{product:05d}", "category": CATEGORIES[product % 12]}
            elif state == "cart":
                url = SITE + "/cart"
            elif state == "checkout":
                url = SITE + "/checkout"
            else:
                url = SITE + "/checkout/confirmation"
            if pages == 0 and campaign is not None:
                sep = "&" if "?" in url else "?"
                url += f"{sep}utm_source={campaign['source']}&utm_medium={campaign['medium']}" \
                       f"&utm_campaign={campaign['name']}"
            emit("page_view", url, referrer if pages == 0 else page_url, props)
            page_url = url
            pages += 1
            dwell_ms = int(min(rng.lognormvariate(mu, DWELL_SIGMA), DWELL_CAP_S) * 1000) + 50
            if state == "search":
                now += 1 + dwell_ms // 10
                emit("search", url, referrer if pages == 1 else page_url,
                     {"query": term, "results": rng.randrange(0, 120)})
            elif state == "checkout":
                now += 1 + dwell_ms // 4
                emit("checkout", url, page_url,
                     {"items": len(cart) or 1, "cart_value": _cart_value(cart)})
            elif state == "purchase":
                now += 1 + dwell_ms // 5
                emit("purchase", url, page_url,
                     {"order_id": f"O{rng.getrandbits(40):010x}", "items": len(cart) or 1,
                      "revenue": _cart_value(cart)})
                break
            if rng.random() < 0.6:
                now += 1 + dwell_ms // 3
                emit("scroll", url, page_url, {"depth_pct": rng.choice((25, 50, 75, 100))})
            if rng.random() < 0.45:
                now += 1 + dwell_ms // 4
                emit("click", url, page_url, {"element": rng.choice(
                    ("nav", "product_card", "banner", "filter", "image_gallery"))})
            now += 1 + dwell_ms // 3
        elif state == "add_to_cart":
            cart.append(product)
            emit("add_to_cart", page_url, page_url,
                 {"product_id": f"P{product:05d}", "price": product_price(product), "quantity": 1})
            now += 1 + rng.randrange(500, 4000)
            state = "added"
        elif state == "remove_from_cart":
            removed = cart.pop() if cart else product
            emit("remove_from_cart", page_url, page_url, {"product_id": f"P{removed:05d}"})
            now += 1 + rng.randrange(500, 4000)
            state = "removed"
        if pages >= MAX_PAGES:
            break
        names, cum = _NEXT[state]
        state = names[min(bisect(cum, rng.random() * cum[-1]), len(names) - 1)]
        if state == "exit":
            break
    return campaign, steps[:max_events]


def _arrival(rng: random.Random):
    """Where the visit comes from: a campaign, an organic search, or direct; and the landing page."""
    roll = rng.random()
    if roll < 0.25:
        source, medium, name, _ = rng.choices(CAMPAIGNS, [c[3] for c in CAMPAIGNS])[0]
        campaign = {"source": source, "medium": medium, "name": name}
        return campaign, _CAMPAIGN_REFERRERS[source], rng.choice(("product", "category", "home"))
    if roll < 0.45:
        return None, rng.choice(ORGANIC_REFERRERS), rng.choice(("home", "product", "search"))
    return None, None, "home"


def _cart_value(cart: list[int]) -> float:
    return round(sum(product_price(p) for p in cart), 2)
