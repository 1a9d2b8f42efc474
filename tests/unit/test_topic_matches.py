"""topic_matches: aiomqtt's wildcard matching, on the cases the hand-written matcher it
replaced (controller/runtime/topics.py `matches`) answered; the expectations are its answers."""

from __future__ import annotations

import pytest

from controller.adapters.mqtt import topic_matches


@pytest.mark.parametrize(
    ("wildcard", "topic", "expected"),
    [
        ("qse/site/dispatch", "qse/site/dispatch", True),
        ("qse/site/dispatch", "qse/site/dispatch/x", False),
        ("qse/site/dispatch", "qse/site", False),
        ("a/b", "a/b/", False),  # a trailing slash is one more (empty) level
        ("ercot/prices/#", "ercot/prices/rt/HB_WEST", True),
        ("ercot/prices/#", "ercot/prices", True),  # `#` includes its parent level
        ("ercot/prices/#", "ercot/pricesx", False),
        ("#", "a", True),
        ("a/+", "a/b", True),
        ("a/+", "a", False),
        ("a/+", "a/", True),  # `+` matches an empty level
        ("a/+", "a/b/c", False),
        ("a/+/c", "a/b/c", True),
        ("+/+", "a/b", True),
        ("+", "a/b", False),
        # $SYS: neither matcher keeps `$` topics out of a leading wildcard (MQTT 4.7.2 asks the
        # broker to); they agree, and the broker never sends $SYS messages to our filters.
        ("#", "$SYS/broker/load", True),
        ("+/broker", "$SYS/broker", True),
        ("$SYS/#", "$SYS/broker/load", True),
    ],
)
def test_topic_matches_as_the_old_matcher_did(wildcard: str, topic: str, expected: bool) -> None:
    assert topic_matches(wildcard, topic) is expected


@pytest.mark.parametrize(
    ("wildcard", "topic"),
    [("a/+", "a/+"), ("a/b#", "a/b#"), ("a/#/b", "a/x/b"), ("", "a"), ("a", "")],
)
def test_malformed_topics_and_filters_match_nothing(wildcard: str, topic: str) -> None:
    # Where they differ: the old matcher compared malformed strings level by level (so
    # "a/+" matched the topic "a/+"); a broker refuses such topics and filters, so no message
    # can carry one. aiomqtt rejects them; topic_matches says no rather than raise.
    assert not topic_matches(wildcard, topic)
