"""A synthetic outdoor-shop FAQ of any size, for the retrieval benchmarks: entries written from
templates with random product names and codes (so BM25 has a real, growing vocabulary), and
customer-style queries about them."""

from __future__ import annotations

import random

BRANDS = ["Northwind", "Fjellrev", "Alpina", "Trailhead", "Kestrel", "Boreal", "Summit",
          "Ridgeback", "Cascade", "Lynx", "Tundra", "Pinecrest"]
PRODUCTS = ["tent", "sleeping bag", "rain jacket", "hiking boots", "backpack", "camping stove",
            "headlamp", "trekking poles", "sleeping mat", "water filter", "e-bike", "kayak",
            "down vest", "gaiters", "hammock", "cooler box", "tarp", "climbing harness"]
FEATURES = ["waterproof", "machine washable", "repairable", "covered by the warranty",
            "available in size XL", "suitable for winter", "compatible with the old model",
            "sold with spare parts", "allowed on flights", "made from recycled material"]
QUESTIONS = [
    "Is the {brand} {name} {product} ({code}) {feature}?",
    "How long is the warranty on the {brand} {name} {product}?",
    "How do I clean my {name} {product} {code}?",
    "Where can I buy replacement parts for the {brand} {product} {code}?",
    "What is the weight of the {name} {product} in size {size}?",
    "Can I rent the {brand} {name} {product} for a week?",
    "Why is my {product} {code} leaking after a {activity} trip?",
    "When will the {brand} {name} {product} be back in stock?",
]
PARAPHRASES = [
    "{name} {product} {code}: {feature}?",
    "question about the {brand} {product} {code}",
    "does the {name} {product} come {feature}",
]
ANSWERS = [
    "The {brand} {name} {product} ({code}) is {feature}. It weighs {weight} g in size {size} "
    "and comes with a {years}-year warranty. Store it dry after every {activity} trip.",
    "Yes: order spare parts for the {product} {code} from the {brand} service page. Shipping "
    "takes {days} working days; parts for the {name} series cost from {price} euros.",
    "Clean the {name} {product} with lukewarm water and a mild soap, then air-dry it. Do not "
    "tumble-dry it. Article {code} is {feature}.",
    "The {brand} {name} {product} is back in stock in {days} days. Rentals cost {price} euros "
    "a day, or {weekly} euros a week, deposit {deposit} euros.",
]
ACTIVITIES = ["hiking", "camping", "kayaking", "skiing", "cycling", "climbing", "fishing"]
SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
QUERY_TEMPLATES = [
    "is the {name} {product} {feature}",
    "{code} warranty",
    "how do I wash my {brand} {product}?",
    "my {product} {code} leaks after {activity}, can I get it repaired?",
    "can I rent a {product} for a week and how much is the deposit",
    "when is the {name} {product} back in stock",
    "spare parts for {code}",
    "what does the {brand} {name} weigh in size {size}",
]
SYLLABLES = ["ka", "lo", "ri", "ven", "tor", "mi", "sa", "dun", "el", "fa", "gro", "ne", "sko",
             "ta", "vik", "ur", "bel", "cor", "dra", "zen", "pol", "quin", "har", "ost"]


def fill(template: str, rng: random.Random, name: str, code: str, product: str) -> str:
    return template.format(
        brand=rng.choice(BRANDS), name=name, product=product, code=code,
        feature=rng.choice(FEATURES), size=rng.choice(SIZES), activity=rng.choice(ACTIVITIES),
        weight=rng.randint(80, 4800), years=rng.choice([2, 3, 5, 10]),
        days=rng.randint(2, 21), price=rng.randint(5, 400), weekly=rng.randint(40, 900),
        deposit=rng.choice([50, 100, 150, 200, 300]),
    )


def product_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def product_code(rng: random.Random) -> str:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXZ") for _ in range(2))
    return f"{letters}-{rng.randint(1000, 99999)}"


def synthetic_entries(n: int, seed: int) -> list[tuple[str, list[str], str, str, str, str]]:
    """(id, variants, answer, name, code, product) per entry."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name, code, product = product_name(rng), product_code(rng), rng.choice(PRODUCTS)
        question = fill(rng.choice(QUESTIONS), rng, name, code, product)
        paraphrase = fill(rng.choice(PARAPHRASES), rng, name, code, product)
        answer = fill(rng.choice(ANSWERS), rng, name, code, product)
        out.append((f"p{i:06d}", [question, paraphrase], answer, name, code, product))
    return out


def queries_for(entries: list, count: int, seed: int) -> list[str]:
    """Distinct customer-style queries; most name a product or code from the entries."""
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < count:
        _id, _variants, _answer, name, code, product = rng.choice(entries)
        if rng.random() < 0.2:  # some name nothing in the catalogue
            name, code = product_name(rng), product_code(rng)
        seen.setdefault(fill(rng.choice(QUERY_TEMPLATES), rng, name, code, product), None)
    return list(seen)
