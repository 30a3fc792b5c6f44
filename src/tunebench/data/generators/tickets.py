"""Synthetic customer-support tickets: the embedded default's fine-tuning task.

Deterministic for a given seed (only `random.Random(seed)` is used, lists are iterated in order).
Each ticket has an intent (10 classes), the product it is about (or "none"), varied phrasing,
greetings and sign-offs, distractor sentences that mention *other* intents' topics, typos and
casing noise, so that a label name alone does not give the answer away.
"""

from __future__ import annotations

import random

INTENTS: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my {product} order {order}.",
        "there is a charge of ${amount} on my card that I don't recognise.",
        "why was I billed ${amount} this month? my plan is cheaper than that",
        "The invoice for order {order} shows the wrong amount, ${amount} instead of what I paid at checkout.",
        "my bank statement has two payments to you for the same {product}.",
        "Can you explain the extra ${amount} fee on my last invoice?",
        "I got billed even though my free trial was supposed to run until {date}.",
        "The tax on order {order} looks wrong, can someone check the billing?",
    ],
    "refund": [
        "I would like my money back for the {product}, order {order}.",
        "please refund the ${amount} for the {product} I returned {days} days ago.",
        "I sent the {product} back last week and still have no refund.",
        "How long does a refund take? I returned order {order} on {date}.",
        "the {product} is not what I expected, I want a full refund.",
        "You confirmed my return of the {product} but the ${amount} never came back to my card.",
        "Can I get a refund instead of store credit for order {order}?",
        "I changed my mind about the {product}, how do I get my money back?",
    ],
    "cancellation": [
        "Please cancel my subscription, I don't use it anymore.",
        "how do I cancel my membership before the next renewal on {date}?",
        "I want to stop my monthly plan effective immediately.",
        "cancel order {order} please, I ordered the {product} by mistake.",
        "I need to end my account and stop all future payments.",
        "Is it possible to cancel the {product} order {order} before it ships?",
        "Stop renewing my plan. I tried to cancel in the app but could not find the button.",
        "please terminate my subscription, the {product} bundle is not for me",
    ],
    "shipping_delay": [
        "My order {order} was supposed to arrive {days} days ago and it's still not here.",
        "where is my {product}? tracking has not updated since {date}.",
        "The {product} I ordered is late, the estimated delivery was {date}.",
        "order {order} still says 'in transit' after {days} days, is it lost?",
        "I've been waiting {days} days for my package, when will the {product} arrive?",
        "The courier never delivered order {order} even though tracking says out for delivery.",
        "My delivery is really delayed, I needed the {product} for a trip on {date}.",
        "has order {order} even shipped yet? It's been {days} days",
    ],
    "damaged_item": [
        "The {product} arrived broken, the box was crushed.",
        "my {product} came with a cracked screen, order {order}.",
        "When I opened the package the {product} was scratched and dented.",
        "The {product} from order {order} is damaged and doesn't turn on.",
        "parts of the {product} were snapped off when it arrived",
        "the {product} leaked all over the box, it arrived damaged",
        "I just received the {product} and the glass is shattered.",
        "Order {order}: the {product} has a big dent, clearly damaged in transit.",
    ],
    "wrong_item": [
        "I ordered a {product} but received something completely different.",
        "order {order} contained the wrong item, not the {product} I paid for.",
        "You sent me the wrong colour and size of the {product}.",
        "the package for order {order} had someone else's item in it, where's my {product}?",
        "I received two of the wrong thing and no {product}.",
        "This is not the {product} model I ordered, it's the older version.",
        "wrong product delivered! I wanted the {product}, got a phone case",
        "Got a {product} in the box but it's the wrong model from the one on my order {order}.",
    ],
    "login_problem": [
        "I can't log in to my account, it says my password is wrong.",
        "I forgot my password and the reset email never arrives.",
        "my account is locked after too many login attempts.",
        "The two-factor code isn't working so I can't sign in.",
        "I'm unable to access my account since {date}, login keeps failing.",
        "the password reset link says it has expired every time I click it",
        "I can't sign in on the app, it just says invalid credentials.",
        "How do I get back into my account? I no longer have access to my old email.",
    ],
    "address_change": [
        "I need to change the delivery address for order {order}.",
        "please update my shipping address, I moved on {date}.",
        "Can you send the {product} to my work address instead of home?",
        "I typed the wrong street number for order {order}, can you fix the address?",
        "how do I update the address on my account before the {product} ships?",
        "Please redirect my package to a new address, I won't be home.",
        "my apartment number is missing from the address on order {order}",
        "I'd like to change where the {product} is delivered, new address below.",
    ],
    "product_question": [
        "Does the {product} work with an iPhone?",
        "what is the warranty on the {product}?",
        "Is the {product} available in a bigger size?",
        "Can the {product} be used outdoors in the rain?",
        "Before I buy, how long does the battery of the {product} last?",
        "is the {product} compatible with european plugs?",
        "What are the dimensions of the {product}? will it fit on a small desk?",
        "Does the {product} come with a charger in the box or is it sold separately?",
    ],
    "technical_issue": [
        "The {product} keeps disconnecting from bluetooth.",
        "your app crashes every time I open my order history.",
        "the {product} won't pair with my phone after the latest update.",
        "The website gives an error 500 when I try to check out.",
        "My {product} freezes after a few minutes of use and I have to restart it.",
        "The firmware update bricked my {product}, it just shows a blinking light.",
        "the {product} app won't sync my data since {date}",
        "I get a blank page when I click on 'my orders' in the app.",
    ],
}

PRODUCTS = [
    "wireless earbuds", "smart watch", "4K monitor", "espresso machine", "yoga mat",
    "standing desk", "robot vacuum", "gaming mouse", "air fryer", "hiking backpack",
    "bluetooth speaker", "electric kettle", "laptop stand", "office chair", "running shoes",
    "winter jacket", "LED desk lamp", "USB-C charger", "noise cancelling headphones",
    "fitness tracker", "coffee grinder", "mechanical keyboard", "baby monitor",
    "water bottle", "electric toothbrush", "camping tent", "blender", "e-reader",
]

OPENERS = ["", "", "Hi,", "Hello,", "hey", "Hi team,", "Good morning,", "Dear support,",
           "Hello there,", "hi there", "URGENT:", "Quick question:"]
CLOSERS = ["", "", "Thanks.", "thank you", "Regards, {name}", "Thanks in advance!", "pls help asap",
           "Best, {name}", "cheers", "- {name}", "Looking forward to your reply."]
# Sentences that mention another intent's vocabulary without being the request.
DISTRACTORS = [
    "I've been a customer for years and never had a problem before.",
    "Last time I got a refund it was quick, so I hope this is easy too.",
    "My address and payment details are all up to date.",
    "I already tried logging out and back in.",
    "The delivery itself was on time.",
    "I love the {other}, by the way.",
    "Not asking about my bill, that one is fine.",
    "I don't want to cancel anything.",
    "This is my second message about this.",
    "I bought a {other} from you last year too.",
]
NAMES = ["Anna", "Ben", "Chen", "Dario", "Elif", "Fatima", "Gus", "Hiro", "Ines", "Jonas",
         "Kemi", "Luca", "Maya", "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq"]

NO_PRODUCT = "none"


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # swap neighbours
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:  # drop a letter
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]  # double a letter


def _noisy(text: str, rng: random.Random, typo_rate: float) -> str:
    words = text.split(" ")
    return " ".join(_typo(w, rng) if rng.random() < typo_rate else w for w in words)


def generate(n_rows: int = 3000, seed: int = 13, typo_rate: float = 0.04,
             distractor_rate: float = 0.35) -> list[dict]:
    """Return `n_rows` tickets, balanced over intents, as dicts with id, text, intent, product."""
    rng = random.Random(seed)
    intents = list(INTENTS)
    rows = []
    for i in range(n_rows):
        intent = intents[i % len(intents)]
        template = rng.choice(INTENTS[intent])
        product = rng.choice(PRODUCTS)
        other = rng.choice([p for p in PRODUCTS if p != product])
        slots = {
            "order": f"#{rng.randrange(100000, 999999)}",
            "amount": f"{rng.randrange(5, 400)}.{rng.randrange(0, 100):02d}",
            "days": str(rng.randrange(3, 30)),
            "date": f"{rng.choice(['March', 'May', 'June', 'Sept', 'Oct', 'Nov'])} {rng.randrange(1, 29)}",
            "name": rng.choice(NAMES),
            "other": other,
        }
        # Typos go into the template words only, so the product name stays extractable.
        body = _noisy(template, rng, typo_rate).replace("{product}", "\x00")
        body = body.format(**slots).replace("\x00", product)
        mentions_product = "{product}" in template
        parts = [rng.choice(OPENERS), body]
        if rng.random() < distractor_rate:
            parts.insert(rng.choice([1, 2]) if rng.random() < 0.5 else 2,
                         rng.choice(DISTRACTORS).format(**slots))
        parts.append(rng.choice(CLOSERS).format(**slots))
        text = " ".join(p for p in parts if p).strip()
        style = rng.random()
        if style < 0.15:
            text = text.lower()
        elif style < 0.18:
            text = text.upper()
        rows.append({
            "id": f"t{seed}-{i:05d}",
            "text": text,
            "intent": intent,
            "product": product if mentions_product else NO_PRODUCT,
        })
    rng.shuffle(rows)
    return rows
