"""The demo corpus: six checkable topics, generated from a seed, with held-out splits.

Topics: `definitions` (mathematical definitions), `ioi` (indirect-object sentences in the style of
Wang et al.), `greater_than` (year ranges in the style of Hanna et al.), and encyclopedic
sentences about `animals`, `places` and `objects`. Facts are fixed per entity (the owl always
hunts at night), so a model that learns the corpus learns them.

Names also occur twice in some encyclopedic sentences ("Ruth lived in Rome. Ruth liked the
river Tiber."), which teaches copying a name in general, not the IOI task.

Held out (never in a training document): the last IOI templates and names of `IOI_TEMPLATES`
and `NAMES` (held-out names still occur in the other topics, so their embeddings are trained),
the last greater-than nouns, and the last framing of every other topic.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

TOPICS = ("definitions", "ioi", "greater_than", "animals", "places", "objects")
TOPIC_WEIGHTS = {
    "definitions": 2,
    "ioi": 8,
    "greater_than": 2,
    "animals": 2,
    "places": 1,
    "objects": 1,
}

NAMES = """Mary John Alice Bob Sarah Tom Emma David Anna James Laura Peter Kate Michael Lucy Paul
Susan Mark Helen George Rose Henry Julia Daniel Clara Simon Grace Oliver Ella Jack Sophie Ben
Lily Adam Nora Sam Ruth Max Amy Leo Jane Carl Eva Hugo Iris Ivan Maya Noah Vera Luke Zoe Owen
Tina Ryan Alan Beth Dean Fiona Gary Hannah Agnes Arthur Bella Boris Camille Cecil Diana Edgar Edith
Felix Flora Frank Gina Gregor Hazel Igor Irene Jasper Joan Karl Kim Lars Lena Lionel Martha Milo
Nadia Nigel Olga Oscar Pablo Petra Quentin Rita Rupert Selma Stan Tara Ulrich Ursula Victor Wanda
Walter Xenia Yusuf Yvonne Zack Zelda Abel Bruno Celia Dora Emil Freya Hector Ingrid Joel
Kira""".split()
N_HELDOUT_NAMES = 20  # the last 20 names never appear in a training IOI sentence


IOI_TEMPLATES = [  # {A} is the indirect object (the answer), {B} the subject named twice
    "{B} and {A} met at the {place}. {B} gave a {thing} to {A}.",
    "{B} and {A} had a {thing}. {B} gave it to {A}.",
    "{B} met {A}, and {B} gave a {thing} to {A}.",
    "Then, {B} and {A} went to the {place}. {B} gave a {thing} to {A}.",
    "Then, {B} and {A} had a lot of fun at the {place}. {B} gave a {thing} to {A}.",
    "Then, {B} and {A} were working at the {place}. {B} decided to give a {thing} to {A}.",
    "Then, {B} and {A} were thinking about going to the {place}. {B} wanted to give a {thing} "
    "to {A}.",
    "Then, {B} and {A} had a long argument, and afterwards {B} said to {A}.",
    "After {B} and {A} went to the {place}, {B} gave a {thing} to {A}.",
    "When {B} and {A} got a {thing} at the {place}, {B} decided to give it to {A}.",
    "When {B} and {A} got a {thing} at the {place}, {B} decided to give the {thing} to {A}.",
    "While {B} and {A} were working at the {place}, {B} gave a {thing} to {A}.",
    "While {B} and {A} were commuting to the {place}, {B} gave a {thing} to {A}.",
    "After the lunch, {B} and {A} went to the {place}. {B} gave a {thing} to {A}.",
    "Afterwards, {B} and {A} went to the {place}. {B} gave a {thing} to {A}.",
    "Then, {B} and {A} had a long argument. Afterwards {B} said to {A}.",
    "The {place} {B} and {A} went to had a {thing}. {B} gave it to {A}.",
    "Friends {B} and {A} found a {thing} at the {place}. {B} gave it to {A}.",
]
N_HELDOUT_IOI_TEMPLATES = 3
IOI_PLACES = "store garden school station hospital office market park restaurant library".split()
IOI_THINGS = "drink book ring kiss bone necklace snack apple basketball computer".split()

GT_NOUNS = """war expedition drought famine reign strike project siege journey campaign dynasty
occupation voyage pilgrimage rebellion""".split()
N_HELDOUT_GT_NOUNS = 3
GT_VERBS = ["lasted", "continued", "went on"]

CONCEPTS = {  # concept -> definition (fixed)
    "circle": "the set of all points in a plane that are equidistant from a fixed point",
    "sphere": "the set of all points in space that are equidistant from a fixed point",
    "square": "a polygon with four equal sides and four right angles",
    "rectangle": "a polygon with four right angles",
    "triangle": "a polygon with three sides and three angles",
    "polygon": "a closed figure made of straight line segments",
    "parallelogram": "a polygon with two pairs of parallel sides",
    "cube": "a solid with six equal square faces",
    "line": "a straight path that extends without end in both directions",
    "angle": "the figure formed by two rays that share a common endpoint",
    "radius": "the distance from the center of a circle to any point on the circle",
    "diameter": "a line segment through the center of a circle with both endpoints on the circle",
    "prime number": "a whole number greater than one whose only divisors are one and itself",
    "even number": "a whole number that is divisible by two",
    "odd number": "a whole number that is not divisible by two",
    "integer": "a whole number that can be positive, negative or zero",
    "fraction": "a number that expresses a part of a whole",
    "function": "a rule that assigns to each x in a set exactly one value",
    "variable": "a symbol such as x that stands for an unknown number",
    "equation": "a statement that two expressions are equal",
    "set": "a collection of distinct objects",
    "vector": "a quantity with both a size and a direction",
    "matrix": "a rectangular array of numbers arranged in rows and columns",
    "derivative": "the rate at which a function changes at a point",
    "integral": "the area under the graph of a function",
}
DEFINITION_FRAMES = [
    "{Art} {c} is {d}.",
    "In mathematics, {art} {c} is {d}.",
    "A detailed description of {art} {c} is that it is {d}.",
    "We say that {art} {c} is {d}.",
    "Then, {art} {c} is {d}.",  # held out
]

ANIMALS = {  # animal -> (class, habitat, food, trait)
    "owl": ("bird", "forest", "mice", "hunts at night"),
    "eagle": ("bird", "mountains", "fish", "has very sharp eyes"),
    "penguin": ("bird", "ice", "fish", "cannot fly"),
    "parrot": ("bird", "jungle", "seeds", "can copy human speech"),
    "whale": ("mammal", "ocean", "krill", "sings long songs"),
    "dolphin": ("mammal", "sea", "fish", "swims in groups"),
    "fox": ("mammal", "forest", "rabbits", "has a bushy tail"),
    "wolf": ("mammal", "forest", "deer", "hunts in packs"),
    "bear": ("mammal", "mountains", "berries", "sleeps through the winter"),
    "camel": ("mammal", "desert", "leaves", "can go for days without water"),
    "elephant": ("mammal", "savanna", "grass", "has a long trunk"),
    "lion": ("mammal", "savanna", "zebras", "lives in a pride"),
    "horse": ("mammal", "meadow", "hay", "can run very fast"),
    "rabbit": ("mammal", "meadow", "carrots", "has long ears"),
    "frog": ("amphibian", "pond", "insects", "has sticky tongue"),
    "snake": ("reptile", "desert", "mice", "has no legs"),
    "turtle": ("reptile", "river", "plants", "carries a hard shell"),
    "shark": ("fish", "ocean", "seals", "has many rows of teeth"),
    "salmon": ("fish", "river", "insects", "swims upstream to lay eggs"),
    "bee": ("insect", "meadow", "nectar", "makes honey"),
    "ant": ("insect", "forest", "seeds", "lives in a large colony"),
}
ANIMAL_FRAMES = [
    "The {a} is {art2} {cls} that lives in the {hab}.",
    "The {a} eats {food}. It {trait}.",
    "A detailed description of the {a} is that it is {art2} {cls} that {trait}.",
    "{Name} saw {art} {a} near the {hab}. The {a} {trait}.",
    "{Name} saw {art} {a} near the {hab}, and {Name} said that the {a} {trait}.",
    "The {a} that lives in the {hab} eats {food}.",  # held out
]

PLACES = {  # city -> (country, river, landmark)
    "Paris": ("France", "Seine", "a tall iron tower"),
    "London": ("England", "Thames", "a large clock tower"),
    "Rome": ("Italy", "Tiber", "an old stone arena"),
    "Cairo": ("Egypt", "Nile", "the great pyramids"),
    "Vienna": ("Austria", "Danube", "a famous opera house"),
    "Prague": ("Bohemia", "Vltava", "a long stone bridge"),
    "Lisbon": ("Portugal", "Tagus", "a white tower by the water"),
    "Warsaw": ("Poland", "Vistula", "a rebuilt old town"),
    "Dublin": ("Ireland", "Liffey", "an old college library"),
    "Cologne": ("Germany", "Rhine", "a huge cathedral"),
}
PLACE_FRAMES = [
    "{city} is a city in {country}.",
    "The river {river} flows through {city}.",
    "{Name} lived in {city}, a city on the river {river}.",
    "{Name} lived in {city}. {Name} liked the river {river}.",
    "Visitors to {city} in {country} often see {landmark}.",
    "A detailed description of {city} is that it is a city in {country} on the river {river}.",
    "{Name} saw {landmark} in {city}.",  # held out
]

OBJECTS = {  # object -> (purpose, material)
    "hammer": ("drive nails into wood", "steel"),
    "knife": ("cut bread and meat", "steel"),
    "key": ("open a locked door", "brass"),
    "lamp": ("give light in a dark room", "glass"),
    "clock": ("show the time of day", "wood"),
    "umbrella": ("keep the rain off", "cloth"),
    "ladder": ("reach high places", "wood"),
    "spoon": ("eat soup", "silver"),
    "needle": ("sew clothes", "steel"),
    "bucket": ("carry water", "tin"),
    "broom": ("sweep the floor", "straw"),
    "compass": ("find the way north", "brass"),
}
OBJECT_FRAMES = [
    "A {o} is a tool that is used to {use}.",
    "{Name} used a {o} to {use}.",
    "{Name} found a {o}. {Name} used the {o} to {use}.",
    "This {o} is made of {mat}.",
    "A detailed description of a {o} is that it is a tool made of {mat} used to {use}.",
    "{Name} wanted to {use} and used a {o}.",  # held out
]


PATCHSCOPE_PROMPT = "A detailed description of x is that"


@dataclass(frozen=True)
class Document:
    text: str
    topic: str
    split: str  # "train", "validation" (new documents, training frames) or "heldout"

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class IOIPrompt:
    prompt: str  # ends just before the indirect object
    answer: str  # " Mary"
    wrong: str  # the subject, " John"
    template: int
    heldout: bool


@dataclass(frozen=True)
class GreaterThanPrompt:
    prompt: str  # "The war lasted from the year 1732 to the year 17"
    start_yy: int  # 32: a correct continuation is a two-digit token greater than this


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _names(heldout: bool) -> list[str]:
    return list[str](NAMES[-N_HELDOUT_NAMES:] if heldout else NAMES[:-N_HELDOUT_NAMES])


def _ioi_templates(heldout: bool) -> list[int]:
    n = len(IOI_TEMPLATES)
    return list(
        range(n - N_HELDOUT_IOI_TEMPLATES, n) if heldout else range(n - N_HELDOUT_IOI_TEMPLATES)
    )


def ioi_sentence(
    rng: random.Random, heldout: bool, heldout_templates: bool | None = None
) -> tuple[str, str, str, int]:
    """A full IOI sentence, its indirect object, its subject and its template index.

    `heldout` picks held-out names (and templates, unless `heldout_templates` says otherwise).
    """
    heldout_templates = heldout if heldout_templates is None else heldout_templates
    index = rng.choice(_ioi_templates(heldout_templates))
    io, s = rng.sample(_names(heldout), 2)
    text = IOI_TEMPLATES[index].format(
        A=io, B=s, place=rng.choice(IOI_PLACES), thing=rng.choice(IOI_THINGS)
    )
    if rng.random() < 0.5:  # ABBA as well as BABA: swap the order of the first mention
        first = text.find(s)
        second = text.find(io, first)
        text = text[:first] + io + text[first + len(s) : second] + s + text[second + len(io) :]
    return text, io, s, index


def greater_than_sentence(rng: random.Random, heldout: bool) -> tuple[str, int]:
    nouns = GT_NOUNS[-N_HELDOUT_GT_NOUNS:] if heldout else GT_NOUNS[:-N_HELDOUT_GT_NOUNS]
    century = rng.randint(11, 19)
    start = rng.randint(2, 97)
    end = rng.randint(start + 1, 99)
    noun, verb = rng.choice(nouns), rng.choice(GT_VERBS)
    text = f"The {noun} {verb} from the year {century}{start:02d} to the year {century}{end:02d}."
    return text, start


def _frame(frames: list[str], rng: random.Random, heldout: bool) -> str:
    return frames[-1] if heldout else rng.choice(frames[:-1])


def topic_sentence(topic: str, rng: random.Random, heldout: bool) -> str:
    name = rng.choice(NAMES)  # every name, held-out IOI names included, occurs in these topics
    if topic == "ioi":
        return ioi_sentence(rng, heldout)[0]
    if topic == "greater_than":
        return greater_than_sentence(rng, heldout)[0]
    if topic == "definitions":
        concept = rng.choice(sorted(CONCEPTS))
        text = _frame(DEFINITION_FRAMES, rng, heldout)
        art = article(concept)
        return text.format(Art=art.capitalize(), art=art, c=concept, d=CONCEPTS[concept])
    if topic == "animals":
        animal = rng.choice(sorted(ANIMALS))
        cls, hab, food, trait = ANIMALS[animal]
        return _frame(ANIMAL_FRAMES, rng, heldout).format(
            a=animal,
            art=article(animal),
            art2=article(cls),
            cls=cls,
            hab=hab,
            food=food,
            trait=trait,
            Name=name,
        )
    if topic == "places":
        city = rng.choice(sorted(PLACES))
        country, river, landmark = PLACES[city]
        return _frame(PLACE_FRAMES, rng, heldout).format(
            city=city, country=country, river=river, landmark=landmark, Name=name
        )
    if topic == "objects":
        obj = rng.choice(sorted(OBJECTS))
        use, mat = OBJECTS[obj]
        return _frame(OBJECT_FRAMES, rng, heldout).format(o=obj, use=use, mat=mat, Name=name)
    raise ValueError(f"unknown topic {topic!r}; topics are {TOPICS}")


def document(topic: str, rng: random.Random, heldout: bool) -> Document:
    """One to three sentences of one topic."""
    n = 1 if topic in ("ioi", "greater_than") else rng.randint(1, 3)
    sentences = [topic_sentence(topic, rng, heldout) for _ in range(n)]
    return Document(" ".join(sentences), topic, "heldout" if heldout else "train")


def generate_corpus(n_train: int, n_heldout_per_topic: int, seed: int) -> list[Document]:
    """`n_train` training documents (topics mixed by `TOPIC_WEIGHTS`), then per topic
    `n_heldout_per_topic` validation documents (new documents from the training frames, names
    and templates) and as many held-out ones (held-out frames, names and templates)."""
    rng = random.Random(seed)
    weighted = [t for t in TOPICS for _ in range(TOPIC_WEIGHTS[t])]
    train = [document(rng.choice(weighted), rng, heldout=False) for _ in range(n_train)]
    validation, heldout = [], []
    for topic in TOPICS:
        for _ in range(n_heldout_per_topic):
            doc = document(topic, rng, heldout=False)
            validation.append(Document(doc.text, topic, "validation"))
            heldout.append(document(topic, rng, heldout=True))
    return train + validation + heldout


def ioi_prompts(
    n: int, seed: int, heldout: bool = True, heldout_templates: bool | None = None
) -> list[IOIPrompt]:
    """IOI prompts cut before the indirect object (held-out names AND templates by default;
    `heldout_templates` apart from `heldout` mixes held-out names with training templates or
    the reverse)."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        text, io, s, index = ioi_sentence(rng, heldout, heldout_templates)
        cut = text.rstrip(".").rsplit(" ", 1)[0]
        prompts.append(IOIPrompt(cut, " " + io, " " + s, index, heldout))
    return prompts


def greater_than_prompts(n: int, seed: int, heldout: bool = True) -> list[GreaterThanPrompt]:
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        text, start = greater_than_sentence(rng, heldout)
        prompts.append(GreaterThanPrompt(text[: -len("00.")], start))
    return prompts
