"""Interpretable features of a reply, computed without a language model.

What :func:`reply_features` measures of each reply (one row per reply, one column per feature of
:data:`FEATURES`, float64), for ``penchant prefs explain``: which of these a person's choice
between two replies follows. Every feature is a plain count, share or formula over the reply's
text (and, for ``prompt_overlap``, its prompt); its definition and unit are in :data:`FEATURES`.

Text is read after typographic quotes are made straight (’ → ', “ ” → "), so "can’t" and "can't"
are one word. A *word* is a run of letters or digits, with inner apostrophes (``don't``, ``it's``)
kept: ``[A-Za-z0-9]+('[A-Za-z0-9]+)*``. A *sentence* is a stretch of text ended by a run of
``.``, ``!`` or ``?`` followed by white space or the end, or the trailing stretch without one,
counted where it holds a word (so "U.S." before a space ends one: the simple counters' error).

Parts of speech come from TextBlob's pattern tagger (``textblob.en.tag``: a Brill-style lexicon
and context rules from the Pattern library, shipped inside the ``textblob`` wheel, so it works
offline after ``pip install textblob``; TextBlob's default NLTK tagger needs corpora that are not on
the package index). spaCy's and NLTK's models are not on the package index, so there is no
named-entity recogniser: ``entities`` counts runs of proper-noun tags (NNP/NNPS), a proxy that
misses lowercase names and drops a one-word run that opens a sentence when its lowercase form is a
common word in the tagger's lexicon (so "Ok." and "First," are not entities, and neither is
"Trump" at a sentence's start).

Syllables (for readability) are counted by a heuristic, not a dictionary: the runs of vowels
(``aeiouy``) in the lowercased word, less one for a final silent ``e`` (a word ending in ``e`` but
not ``le``, with two or more runs), at least one per word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from penchant.errors import ConfigError

#: name → (definition, unit), in the order of :func:`reply_features`'s columns
FEATURES: dict[str, tuple[str, str]] = {
    "words": ("ln(1 + number of words)", "log words"),
    "word_length": ("mean characters per word (0 without words)", "characters"),
    "reading_ease": (("Flesch reading ease 206.835 − 1.015·words/sentence − 84.6·syllables/word "
                      "(206.835 without words)"), "Flesch points"),
    "diversity": (("MTLD lexical diversity (threshold 0.72, mean of forward and backward passes; "
                   "the word count where the type-token ratio never falls to 0.72)"), "words per factor"),
    "nouns": ("share of words tagged as nouns (NN, NNS, NNP, NNPS)", "share of words"),
    "entities": ("runs of proper-noun tags (NNP/NNPS) per 100 words, a proxy for named entities", "per 100 words"),
    "brackets": ("opening brackets ( [ {", "count"),
    "list_lines": ("lines opening with a bullet (- * • –) or an enumerator (1. 2) a) …)", "count"),
    "questions": ("question marks", "count"),
    "politeness": (("politeness markers: please, thank(s/ful), sorry, apologise/apologize/apology, "
                    "appreciate, kindly, pardon, excuse me"), "count"),
    "refusal": (("1 if the reply holds a refusal phrase (I can't, I cannot, I won't, I'm sorry, but, "
                 "as an AI, I'm not able to, I'm unable to, I'm not comfortable, …), else 0"), "indicator"),
    "prompt_overlap": (("share of the reply's words (tokens, lowercased) that occur in the prompt "
                        "(0 without words or prompt)"), "share of words"),
}

_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'})
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z0-9]+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_VOWELS = re.compile(r"[aeiouy]+")
_LIST_LINE = re.compile(r"^[ \t]*(?:[-*•–]|\(?(?:\d{1,3}|[A-Za-z])[.)])[ \t]+\S", re.MULTILINE)
_POLITE = re.compile(r"\b(?:please|thank(?:s|ful|ing)?|sorry|apologi[sz]e[sd]?|apology|apologies|appreciate[sd]?|"
                     r"kindly|pardon|excuse me)\b", re.IGNORECASE)
_REFUSAL = re.compile(
    r"\b(?:i can't|i cannot|i can not|i won't|i will not|i'm not going to|i am not going to|"
    r"i'm sorry,? but|i am sorry,? but|as an ai\b|as a language model|i'm not able to|i am not able to|"
    r"i'm unable to|i am unable to|i'm not comfortable|i am not comfortable|i don't feel comfortable|"
    r"i do not feel comfortable|i'd rather not|i would rather not|i refuse|i must decline|i'm not allowed to|"
    r"i am not allowed to|i shouldn't help|i can't help)", re.IGNORECASE)
_MTLD_THRESHOLD = 0.72


def normalise(text: str) -> str:
    """``text`` with typographic quotes made straight."""
    return text.translate(_QUOTES)


def words(text: str) -> list[str]:
    """The words of ``text`` (see the module docstring), in order, as written."""
    return _WORD.findall(normalise(text))


def sentences(text: str) -> int:
    """How many sentences ``text`` holds (stretches ended by . ! ? before white space or the end)."""
    return sum(1 for part in _SENTENCE_END.split(normalise(text)) if _WORD.search(part))


def syllables(word: str) -> int:
    """The heuristic syllable count of one word (at least 1)."""
    w = word.lower()
    n = len(_VOWELS.findall(w))
    if n > 1 and w.endswith("e") and not w.endswith("le"):
        n -= 1
    return max(n, 1)


def mtld(tokens: Sequence[str], threshold: float = _MTLD_THRESHOLD) -> float:
    """Measure of textual lexical diversity (McCarthy & Jarvis 2010): the mean length, in words, of
    the stretches over which the running type-token ratio stays above ``threshold``, averaged over a
    forward and a backward pass; a text whose ratio never falls to ``threshold`` scores its length."""
    if not tokens:
        return 0.0

    def one_way(seq: Sequence[str]) -> float:
        factors, seen, count, ratio = 0.0, set(), 0, 1.0
        for tok in seq:
            count += 1
            seen.add(tok)
            ratio = len(seen) / count
            if ratio <= threshold:
                factors, seen, count, ratio = factors + 1, set(), 0, 1.0
        if count:
            factors += (1 - ratio) / (1 - threshold)
        return len(seq) / factors if factors > 0 else float(len(seq))

    return (one_way(tokens) + one_way(tokens[::-1])) / 2


def _tagger():
    try:
        from textblob.en import lexicon, tag
    except ImportError:
        raise ConfigError("the part-of-speech features need textblob, which the core install leaves out; "
                          "install it with: pip install 'penchant[text]' (or pip install textblob)") from None
    return tag, lexicon


def part_of_speech(texts: Sequence[str]) -> np.ndarray:
    """(nouns, proper-noun runs) of each text, int64 (n, 2), by TextBlob's pattern tagger (see the
    module docstring for which runs count)."""
    tag, lexicon = _tagger()
    counts = np.zeros((len(texts), 2), dtype=np.int64)
    for i, text in enumerate(texts):
        tagged = tag(normalise(text)) if text.strip() else []
        nouns = runs = 0
        start, run = True, []  # start: the next token opens a sentence
        for word, pos in [*tagged, ("", "")]:
            if pos.startswith("NNP"):
                if not run:
                    run_opens = start
                run.append(word)
            elif run:
                common = run_opens and len(run) == 1 and lexicon.get(run[0].lower()) not in (None, "NNP", "NNPS")
                runs += not common
                run = []
            nouns += pos.startswith("NN") and _WORD.search(word) is not None
            start = word in {".", "!", "?", ":", ";"} or pos == "."
        counts[i] = nouns, runs
    return counts


def reply_features(replies: Sequence[str], prompts: Sequence[str] | None = None) -> np.ndarray:
    """The features of :data:`FEATURES` for each reply, float64 (n, len(FEATURES)), in that order.

    ``prompts`` (n,) are the contexts the replies answer, for ``prompt_overlap`` (0 without)."""
    replies = [normalise(str(r)) for r in replies]
    n = len(replies)
    if prompts is not None and len(prompts) != n:
        raise ValueError(f"{len(prompts)} prompts for {n} replies")
    tokens = [_WORD.findall(r) for r in replies]
    n_words = np.array([len(t) for t in tokens], dtype=np.float64)
    has = n_words > 0
    per_word = np.where(has, 1.0 / np.maximum(n_words, 1), 0.0)
    letters = np.array([sum(map(len, t)) for t in tokens], dtype=np.float64)
    n_syll = np.array([sum(map(syllables, t)) for t in tokens], dtype=np.float64)
    n_sent = np.array([sentences(r) for r in replies], dtype=np.float64)
    ease = 206.835 - np.where(has, 1.015 * n_words / np.maximum(n_sent, 1) + 84.6 * n_syll * per_word, 0.0)
    lowered = [[w.lower() for w in t] for t in tokens]
    diversity = np.array([mtld(t) for t in lowered])
    pos = part_of_speech(replies).astype(np.float64)
    overlap = np.zeros(n)
    if prompts is not None:
        for i, (reply, prompt) in enumerate(zip(lowered, prompts)):
            if reply:
                vocab = {w.lower() for w in _WORD.findall(normalise(str(prompt)))}
                overlap[i] = sum(w in vocab for w in reply) / len(reply)
    count = np.vectorize(lambda r, pattern: len(pattern.findall(r)), otypes=[np.float64], excluded={1})
    text = np.array(replies, dtype=object)
    columns = {
        "words": np.log1p(n_words),
        "word_length": letters * per_word,
        "reading_ease": ease,
        "diversity": diversity,
        "nouns": pos[:, 0] * per_word,
        "entities": 100 * pos[:, 1] * per_word,
        "brackets": count(text, re.compile(r"[(\[{]")) if n else np.zeros(0),
        "list_lines": count(text, _LIST_LINE) if n else np.zeros(0),
        "questions": count(text, re.compile(r"\?")) if n else np.zeros(0),
        "politeness": count(text, _POLITE) if n else np.zeros(0),
        "refusal": (count(text, _REFUSAL) > 0).astype(np.float64) if n else np.zeros(0),
        "prompt_overlap": overlap,
    }
    return np.column_stack([columns[name] for name in FEATURES]) if n else np.zeros((0, len(FEATURES)))
