"""Writes examples/data/corpus/*.txt: a small, deterministic text corpus for
the word-count example.

The text is generated here from word lists and sentence patterns written for
this project (so it is free of any copyright but ours), and seeded, so the
files - and the word counts the notebooks print - never change.  About 155 KB
in 12 files; run it again only if you change it, and commit the output.
"""
import random
import textwrap
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "data" / "corpus"

PEOPLE = ["the ferryman", "the miller", "a young clerk", "the old captain", "the harbour master",
          "a tired traveller", "the weaver", "the ferryman's daughter", "a river pilot",
          "the lamplighter", "the schoolteacher", "a fisherman", "the innkeeper"]
PLACES = ["the river", "the far bank", "the landing", "the mill", "the harbour", "the market",
          "the bridge that was never built", "the island", "the reed beds", "the ferry house",
          "the town", "the estuary", "the lock gates", "the towpath"]
THINGS = ["a lantern", "a coil of rope", "the ledger", "a basket of apples", "a letter",
          "the tide tables", "a brass bell", "an oar", "a loaf of bread", "the fare box",
          "a map of the shoals", "a bundle of wool", "the spare anchor"]
VERBS = ["carried", "counted", "mended", "forgot", "found", "watched", "lost", "weighed",
         "sold", "painted", "remembered", "checked", "loaded", "unloaded"]
MOVES = ["crossed", "walked along", "rowed to", "waited at", "looked across", "came back from",
         "hurried past", "slept near", "sang on the way to", "left"]
WEATHER = ["The fog lay thick on the water.", "Rain came down in long grey sheets.",
           "The wind turned to the east.", "It was the coldest morning of the year.",
           "The sun came out over the marsh.", "Ice formed along the edges of the landing.",
           "The water was high and fast.", "A calm evening settled on the valley."]
TIMES = ["At dawn", "Before noon", "In the evening", "Late at night", "On market day",
         "Every Tuesday", "In the spring", "When the tide turned", "After the storm"]
LINKS = ["and then", "but", "while", "because", "so", "although"]
SAYINGS = ['"Every crossing is the same crossing," said {p}.',
           '"Count the passengers twice," said {p}, "and the fares once."',
           '"The river keeps no ledger," said {p}.',
           '"Nothing crosses that cannot be carried," said {p}.',
           '"Write it down before you forget it," said {p}.']


def sentence(rng):
    p, q = rng.choice(PEOPLE), rng.choice(PEOPLE)
    kind = rng.random()
    if kind < 0.1:
        return rng.choice(WEATHER)
    if kind < 0.18:
        return rng.choice(SAYINGS).format(p=p)
    first = f"{rng.choice(TIMES)} {p} {rng.choice(MOVES)} {rng.choice(PLACES)}"
    if rng.random() < 0.5:
        first += f" with {rng.choice(THINGS)}"
    if rng.random() < 0.6:
        first += (f", {rng.choice(LINKS)} {q} {rng.choice(VERBS)} {rng.choice(THINGS)}"
                  f" by {rng.choice(PLACES)}")
    return first + "."


def chapter(rng, n):
    paragraphs = []
    for _ in range(rng.randint(18, 26)):
        text = " ".join(sentence(rng) for _ in range(rng.randint(4, 9)))
        paragraphs.append(textwrap.fill(text, 78))
    return f"Chapter {n}\n\n" + "\n\n".join(paragraphs) + "\n"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1808)
    for n in range(1, 13):
        (OUT / f"chapter-{n:02d}.txt").write_text(chapter(rng, n))


if __name__ == "__main__":
    main()
