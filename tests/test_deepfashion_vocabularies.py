"""The DeepFashion attribute vocabularies live with the reader (the release's meaning of the
codes); the sample generator draws from those same tuples."""

from __future__ import annotations

import etl.samples.draw as draw
from etl import deepfashion
from etl.deepfashion import ATTRIBUTE_CLASSES, ATTRIBUTE_VOCABULARIES, NECKS, PATTERNS, SLEEVES, class_names


def test_vocabularies_match_the_class_counts():
    assert ATTRIBUTE_CLASSES == {"neck": 7, "sleeve_length": 4, "pattern": 10}
    assert {h: len(v) for h, v in ATTRIBUTE_VOCABULARIES.items()} == ATTRIBUTE_CLASSES
    assert NECKS[0] == "round" and SLEEVES == ("sleeveless", "short", "three-quarter", "long")
    assert PATTERNS[0] == "solid" and PATTERNS.index("gradient") == 8
    assert all(len(set(v)) == len(v) for v in ATTRIBUTE_VOCABULARIES.values())


def test_the_sample_generator_uses_the_readers_vocabularies():
    assert draw.NECKS is deepfashion.NECKS and draw.SLEEVES is deepfashion.SLEEVES and draw.PATTERNS is deepfashion.PATTERNS


def test_class_names():
    assert class_names("sleeve_length", 5) == [*SLEEVES, "n/a"]
    assert class_names("pattern", 10, missing_class=False) == list(PATTERNS)
    assert class_names("neck", 8)[-1] == "n/a" and class_names("neck", 8)[:7] == list(NECKS)
    assert class_names("neck", 4) == ["0", "1", "2", "n/a"]  # another vocabulary size: the codes
    assert class_names("Dress", 3) == ["0", "1", "n/a"]  # a benchmark head without a vocabulary
    assert class_names("Dress", 2, missing_class=False) == ["0", "1"]
