"""The claim registry covers every claim kind the language accepts, and its families
agree with the language's table of p-value claims (the Holm family)."""

from seqcirc.claims import registry
from seqcirc.language import vocab


def test_every_kind_the_language_states_has_a_handler() -> None:
    stated = set(vocab.VALUE_CLAIMS) | set(vocab.TEST_CLAIMS) | {"role"}
    # `faithfulness` is written once and compiles to one of two variants
    stated |= {"normalized_faithfulness"}
    assert stated <= set(registry.HANDLERS)


def test_p_value_kinds_are_the_test_family() -> None:
    tests = {name for name, kind in registry.KINDS.items() if kind.p_value}
    assert tests == set(vocab.P_VALUE_KINDS) == set(registry.P_VALUE_KINDS)
    assert "faithfulness" not in tests and "role" not in tests
