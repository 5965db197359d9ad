"""The "Why" line: a sentence after "Why:", honest about how a paper was picked."""

import pytest

from digest.picks import REASON_LENGTH, Pick
from papers.models import Paper, Topic

CURATED = Topic.Kind.CURATED
INTEREST = Topic.Kind.INTEREST


def pick(*evidence, liked: str = "") -> Pick:
    """``evidence``: (topic name, kind, terms found, closest phrase), strongest first."""
    return Pick(
        paper=Paper(title="A paper"),
        relevance=1.0,
        topics=[Topic(name=name, kind=kind) for name, kind, _, _ in evidence],
        evidence=[(terms, closest) for _, _, terms, closest in evidence],
        liked=liked,
    )


@pytest.mark.parametrize(
    "evidence,liked,reason",
    [
        (
            [("Continual learning", CURATED, ["experience replay", "replay buffer"], "")],
            "",
            "Continual learning: mentions experience replay, replay buffer.",
        ),
        (
            [("Robotics", CURATED, [], "robots learning from demonstrations")],
            "",
            "Robotics: close in meaning to 'robots learning from demonstrations'.",
        ),
        # A reader's own interest is named by its phrase alone.
        (
            [
                (
                    "robots learning from demonstrations",
                    INTEREST,
                    [],
                    "robots learning from demonstrations",
                )
            ],
            "",
            "Close in meaning to 'robots learning from demonstrations'.",
        ),
        (
            [("world models", INTEREST, ["world models"], "")],
            "",
            "Mentions world models.",
        ),
        # Neither words nor meaning: only a curator's pin puts a paper in a topic so.
        ([("Robotics", CURATED, [], "")], "", "Robotics: picked by a curator."),
        (
            [],
            "Data Quality in Imitation Learning",
            "Like 'Data Quality in Imitation Learning', which you liked.",
        ),
        # Topics are named as written; our words go lower-case after the first.
        (
            [
                ("iOS agents", CURATED, ["tool use"], ""),
                ("world models", INTEREST, [], "world models"),
                ("Robotics", CURATED, [], ""),
            ],
            "Dreamer",
            "iOS agents: mentions tool use; close in meaning to 'world models'; "
            "Robotics: picked by a curator; like 'Dreamer', which you liked.",
        ),
    ],
)
def test_the_reason_reads_as_a_sentence_saying_how(evidence, liked, reason):
    assert pick(*evidence, liked=liked).reason == reason


def test_at_most_three_terms_and_three_topics_are_named():
    terms = ["one", "two", "three", "four"]
    topics = [(f"Topic {n}", CURATED, terms, "") for n in range(4)]

    reason = pick(*topics).reason

    assert reason.count("mentions one, two, three;") == 2
    assert "four" not in reason and "Topic 3" not in reason


def test_a_long_reason_fits_the_ledger_and_says_it_was_cut():
    reason = pick(("Replay", CURATED, ["replay " * 100], ""), liked="x" * 600).reason

    assert len(reason) == REASON_LENGTH
    assert reason.endswith("…")


def test_nothing_to_say_says_nothing():
    assert pick().reason == ""
