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

# Single-token first names (GPT-2's tokenizer keeps each as one token with and
# without a leading space).
NAMES: tuple[str, ...] = (
    "John", "Mary", "James", "David", "Michael", "Sarah", "Anna", "Paul", "Peter",
    "Mark", "Tom", "Jack", "Lisa", "Kate", "Emma", "Adam", "Alex", "Ben", "Sam", "Dan",
    "Joe", "Bob", "Max", "Ryan", "Kevin", "Jason", "Laura", "Susan", "Mike", "Jane",
)  # fmt: skip
