"""The ordered sets, names and templates of the paper's sequence-continuation tasks.

Shared vocabulary: the prompt generators draw from it and seqcirc-mini's tokenizer is
built from it, so the bundled model knows every word a built-in task can produce.
"""

from __future__ import annotations

# The templates are words of the language; the generators' vocabulary includes them.
from seqcirc.language.vocab import TEMPLATES as TEMPLATES

# Ordered sets: a member's successor is the next entry. No wrap-around (the paper keeps
# S1 among the first 8 of 12 members, so answers never wrap).
ORDERED_SETS: dict[str, tuple[str, ...]] = {
    "numerals": tuple(str(i) for i in range(1, 101)),
    "number_words": (
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen", "twenty",
    ),
    "months": (
        "January", "February", "March", "April", "May", "June", "July", "August",
        "September", "October", "November", "December",
    ),
    "days": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "letters": tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    "spanish_number_words": (
        "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez",
        "once", "doce",
    ),
    "spanish_months": (
        "enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
        "septiembre", "octubre", "noviembre", "diciembre",
    ),
}  # fmt: skip

# How many members of each set the paper's tasks use by default (numerals 1-12, etc.).
DEFAULT_RANGE: dict[str, int] = {
    "numerals": 12,
    "number_words": 12,
    "months": 12,
    "days": 7,
    "letters": 26,
    "spanish_number_words": 12,
    "spanish_months": 12,
}

# The authors' fillers (apartresearch/seqcont_circuits, MIT; the N words of their prompt
# files, hypotheses/data/paper-prompts): object nouns for the done/lost templates, first
# names for born. `fillers=paper` draws from these; they are single GPT-2 tokens with and
# without a leading space (tests/test_tasks_gpt2_tokenizer.py), not words seqcirc-mini knows.
PAPER_OBJECTS: tuple[str, ...] = (
    "Ant", "Apple", "Arm", "Ax", "Ball", "Bird", "Book", "Box", "Bug", "Camera", "Car",
    "Cat", "Chair", "Clock", "Corn", "Cow", "Desk", "Dog", "Ear", "Eye", "Fan", "Fire",
    "Fish", "Flag", "Gate", "Glass", "Gold", "Hand", "Hat", "Hill", "House", "Ice", "Iron",
    "Jam", "Jar", "Key", "King", "Lake", "Light", "Map", "Moon", "Mouse", "Night", "Nut",
    "Ocean", "Oil", "Orange", "Pear", "Pen", "Queen", "Rain", "Rat", "Ring", "Road", "Rose",
    "Sand", "Snake", "Snow", "Star", "Sun", "Table", "Train", "Tree", "Van", "Wall",
    "Wallet", "Watch", "Wheel", "Wind", "Window", "Wolf", "Year", "Zip",
)  # fmt: skip
PAPER_NAMES: tuple[str, ...] = (
    "Aaron", "Adam", "Alan", "Albert", "Alex", "Allen", "Andre", "Ann", "Anna", "Anne",
    "Anthony", "April", "Arthur", "Bill", "Brandon", "Bruce", "Carl", "Charles", "Chelsea",
    "Chris", "Christian", "Christopher", "Connor", "Craig", "Danny", "David", "Diamond",
    "Donald", "Edward", "Elizabeth", "Eric", "Gary", "Gene", "George", "Gordon", "Greg",
    "Henry", "Howard", "Hunter", "Ian", "Jack", "Jacob", "James", "Jamie", "Jay", "Jeff",
    "Jennifer", "Jeremy", "Jessica", "Jim", "Jimmy", "Jo", "John", "Jon", "Jose", "Joseph",
    "Joshua", "Justin", "Keith", "Kelly", "Kevin", "Kim", "Kyle", "Larry", "Laura", "Lee",
    "Lisa", "Luke", "Madison", "Marc", "Marcus", "Maria", "Mark", "Mary", "Matthew",
    "Michael", "Mike", "Morgan", "Paul", "Peter", "Rachel", "Richard", "Rick", "Robert",
    "Roger", "Rose", "Roy", "Ryan", "Scott", "Sean", "Stephen", "Steve", "Steven", "Taylor",
    "Terry", "Thomas", "Tom", "Tyler", "Victoria", "William",
)  # fmt: skip


def fillers_for(kind: str, template: str) -> tuple[str, ...]:
    """The N words a prompt draws: seqcirc's NAMES, or the authors' by template."""
    if kind == "paper":
        return PAPER_NAMES if template in ("born_in", "custom") else PAPER_OBJECTS
    return NAMES


# Single-token first names (GPT-2's tokenizer keeps each as one token with and
# without a leading space).
NAMES: tuple[str, ...] = (
    "John", "Mary", "James", "David", "Michael", "Sarah", "Anna", "Paul", "Peter",
    "Mark", "Tom", "Jack", "Lisa", "Kate", "Emma", "Adam", "Alex", "Ben", "Sam", "Dan",
    "Joe", "Bob", "Max", "Ryan", "Kevin", "Jason", "Laura", "Susan", "Mike", "Jane",
)  # fmt: skip
