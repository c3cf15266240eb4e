"""Indirect object identification pairs (Wang et al. 2022) with the ABC corruption.

Clean: "Then, John and Mary went to the store. John gave a drink to" -> " Mary" (the indirect
object), wrong answer " John" (the subject). Corrupt (ABC): the same sentence with three other,
distinct names in the three name slots, so no name is repeated and nothing says which is the
indirect object.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from circuitforge.tasks.prompt_pairs import PromptPair

# BABA templates of Wang et al.; {A} is the indirect object, {B} the subject named twice.
WANG_TEMPLATES = [
    "Then, {B} and {A} went to the {place}. {B} gave a {thing} to {A}",
    "Then, {B} and {A} had a lot of fun at the {place}. {B} gave a {thing} to {A}",
    "Then, {B} and {A} were working at the {place}. {B} decided to give a {thing} to {A}",
    "Then, {B} and {A} were thinking about going to the {place}. {B} wanted to give a {thing} "
    "to {A}",
    "Then, {B} and {A} had a long argument, and afterwards {B} said to {A}",
    "After {B} and {A} went to the {place}, {B} gave a {thing} to {A}",
    "When {B} and {A} got a {thing} at the {place}, {B} decided to give it to {A}",
    "When {B} and {A} got a {thing} at the {place}, {B} decided to give the {thing} to {A}",
    "While {B} and {A} were working at the {place}, {B} gave a {thing} to {A}",
    "While {B} and {A} were commuting to the {place}, {B} gave a {thing} to {A}",
    "After the lunch, {B} and {A} went to the {place}. {B} gave a {thing} to {A}",
    "Afterwards, {B} and {A} went to the {place}. {B} gave a {thing} to {A}",
    "Then, {B} and {A} had a long argument. Afterwards {B} said to {A}",
    "The {place} {B} and {A} went to had a {thing}. {B} gave it to {A}",
    "Friends {B} and {A} found a {thing} at the {place}. {B} gave it to {A}",
]
# Single GPT-2 tokens with a leading space (a subset of Wang et al.'s list).
WANG_NAMES = """Aaron Adam Alan Alex Alice Amy Anderson Andre Andrew Andy Anna Anthony Arthur Austin
Blake Brandon Brian Carl Charlie Claire Clark Connor Dan Daniel David Dean Elizabeth Emily Eric
Eva Ford Frank George Georgia Graham Grant Henry Ian Jack Jacob Jake James Jane Janet Jason Jay
Jennifer Jeremy Jessica John Jonathan Jordan Joseph Joshua Justin Kate Kelly Kevin Kyle Laura
Leon Lewis Lisa Louis Luke Madison Marco Marcus Maria Mark Martin Mary Matthew Max Michael
Michelle Morgan Patrick Paul Peter Prince Rachel Richard River Robert Roman Rose Ruby Russell
Ryan Sarah Scott Sean Simon Stephen Steven Sullivan Taylor Thomas Tyler Victoria Warren
William""".split()
WANG_PLACES = "store garden restaurant school hospital office house station".split()
WANG_THINGS = "ring kiss bone basketball computer necklace drink snack".split()


def ioi_pairs(
    n: int,
    seed: int = 0,
    templates: Sequence[str] = WANG_TEMPLATES,
    names: Sequence[str] = WANG_NAMES,
    places: Sequence[str] = WANG_PLACES,
    things: Sequence[str] = WANG_THINGS,
) -> list[PromptPair]:
    """`n` clean/ABC pairs; the template's final `{A}` is cut off and becomes the answer."""
    if len(names) < 6:
        raise ValueError("IOI needs at least 6 names (3 clean, 3 corrupt)")
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        template = rng.choice(templates)
        if not template.rstrip(".").endswith("{A}"):
            raise ValueError(f"IOI template must end with the indirect object {{A}}: {template!r}")
        prompt = template.rstrip(".")[: -len("{A}")].rstrip()
        a, b, x, y, z = rng.sample(names, 5)
        thing = rng.choice(things)
        fill = {"place": rng.choice(places), "thing": thing}
        if thing[0] in "aeiou":  # "an apple", not "a apple"
            prompt = prompt.replace("a {thing}", "an {thing}")
        clean = prompt.format(A=a, B=b, **fill)
        # ABC: the first B, the A and the second B become three distinct other names
        first_b, rest = prompt.split("{B}", 1)
        corrupt = (first_b + x + rest.replace("{B}", z, 1)).format(A=y, **fill)
        pairs.append(PromptPair(clean, corrupt, " " + a, " " + b))
    return pairs
