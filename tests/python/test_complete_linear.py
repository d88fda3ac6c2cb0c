"""Completion reads what is left of the cursor in linear time (ferry._complete).

The end-anchored patterns it used took time quadratic in a long run of word
characters: 37 s for a 100k-character identifier.  The helpers that replace
them must find exactly what the patterns found (checked on seeded random
text against the patterns themselves) and stay linear (checked on inputs
where the patterns would take hours).
"""

import random
import re
import signal

import pytest

from ferry import _complete

# The old patterns, with \Z for $: "$" also matched before a final newline,
# completing the previous line's name at the start of a new one.
DOTTED = re.compile(r"[A-Za-z_][\w.]*\Z")
IDENT_TAIL = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*\.?\Z|\Z")
DICT_KEY = re.compile(r"([A-Za-z_][\w.]*)\[\s*(['\"])([^'\"]*)\Z")
CALLEE = re.compile(r"([A-Za-z_][\w.]*)\([^()]*\Z")


def samples(n=20000, seed=14):
    rng = random.Random(seed)
    alphabet = "ab_9Z.. [['\"(x) \n%é"
    for _ in range(n):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))


def test_the_linear_helpers_find_what_the_patterns_found():
    for text in samples():
        m = DOTTED.search(text)
        assert _complete._dotted_tail(text) == (m.group(0) if m else None), text
        m = IDENT_TAIL.search(text)
        assert _complete._ident_tail(text) == m.group(0), text
        m = DICT_KEY.search(text)
        assert _complete._dict_key(text) == (m.groups() if m else None), text
        m = CALLEE.search(text)
        assert _complete._callee(text) == (m.group(1) if m else None), text


@pytest.fixture
def hang_is_failure():
    def expire(signum, frame):
        raise AssertionError("completion took minutes: not linear")
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(120)  # linear: well under a second; quadratic: hours
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


MILLION = {
    "identifier": "a" * 1_000_000,
    "dict-key": "d['" + "a" * 1_000_000,
    "bad-attribute": "a" * 1_000_000 + ".9",
    "after-operator": "x = " + "a" * 1_000_000 + "-",
    "call": "f(" + "a" * 1_000_000,
    "attribute-chain": "a." * 500_000,
}


@pytest.mark.parametrize("shape", list(MILLION))
def test_completion_and_inspection_of_a_million_characters(shape, hang_is_failure):
    code = MILLION[shape]
    ns = {"d": {"alpha": 1}, "f": len}
    reply = _complete.complete(code, len(code), ns)
    assert reply["status"] == "ok"
    assert 0 <= reply["cursor_start"] <= len(code)
    _complete.inspect_request(code, len(code), 0, ns)
