"""The cmd document as the agent reads it, and the order it carries cmds out in."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.agent.protocol import Command, admits, parse_cmd


def _cmd(**doc: object) -> bytes:
    return json.dumps({"seq": 1, "target_kw": 5.0, **doc}).encode()


def test_epoch_is_optional_and_read_when_present() -> None:
    assert parse_cmd(_cmd()) == Command(1, 5.0, None)
    assert parse_cmd(_cmd(epoch=812)) == Command(1, 5.0, 812)


@pytest.mark.parametrize("epoch", [-1, 1.5, "812", True, None, [1]])
def test_an_epoch_that_is_no_count_rejects_the_cmd(epoch: object) -> None:
    assert parse_cmd(_cmd(epoch=epoch)) is None


def test_a_new_leadership_is_obeyed_whatever_its_seq() -> None:
    assert admits(Command(3, 1.0, 7), applied_seq=40, epoch=6, fresh=False) == "carry_out"


def test_a_deposed_leadership_is_fenced_whatever_its_seq() -> None:
    assert admits(Command(99, 1.0, 5), applied_seq=40, epoch=6, fresh=False) == "fenced"
    assert admits(Command(99, 1.0, 5), applied_seq=40, epoch=6, fresh=True) == "fenced"


def test_within_one_epoch_and_without_epochs_seq_orders() -> None:
    for epoch in (6, None):
        assert admits(Command(41, 1.0, epoch), 40, 6, fresh=False) == "carry_out"
        assert admits(Command(40, 1.0, epoch), 40, 6, fresh=False) == "ignored"
        assert admits(Command(40, 1.0, epoch), 40, 6, fresh=True) == "carry_out"  # retained
        assert admits(Command(39, 1.0, epoch), 40, 6, fresh=True) == "ignored"


@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 50)), min_size=1, max_size=30),
)
def test_property_obeyed_epochs_never_go_back(cmds: list[tuple[int, int]]) -> None:
    """Whatever order cmds arrive in, the (epoch, seq) carried out only grows, and no cmd of
    an epoch below one obeyed is ever carried out."""
    applied_seq, epoch, last = 0, 0, (0, 0)
    for cmd_epoch, seq in cmds:
        if admits(Command(seq, 1.0, cmd_epoch), applied_seq, epoch, fresh=False) == "carry_out":
            assert (cmd_epoch, seq) > last and cmd_epoch >= epoch
            applied_seq, epoch, last = seq, max(epoch, cmd_epoch), (cmd_epoch, seq)
