"""The study's rectangle user (session 41, dev/corrections/users.swept): each drag turns
back every change inside a box around a wrong change, right or wrong, to the class the
parent map had, on the left half only."""

from __future__ import annotations

import numpy as np

from map_refiner.dev.corrections.users import swept


def test_a_drag_turns_back_every_change_in_its_box_to_the_parent_s_class() -> None:
    before = np.zeros((40, 60), bool)
    before[5:10, 5:10] = True  # a roof the round erased (a wrong change)
    before[5:10, 40:45] = True  # one on the right half it erased too
    pred = before.copy()
    pred[5:10, 5:10] = False
    pred[12:14, 12:14] = True  # a new building beside it (right or not: turned back too)
    pred[30:32, 5:7] = True  # a new building far from it
    wrong = [(np.pad(np.ones((5, 5), bool), ((5, 30), (5, 50))), 1)]
    (drag,) = swept(wrong, pred, before, half=30, pad_px=4)
    by_class = {c: m for m, c in drag}
    assert set(by_class) == {0, 1}
    assert by_class[1].sum() == 25 and by_class[1][5:10, 5:10].all()  # back to building
    assert by_class[0].sum() == 4 and by_class[0][12:14, 12:14].all()  # back to background
    assert not by_class[0][30:32, 5:7].any()  # outside the box
    assert not by_class[1][:, 30:].any()  # the right half is never drawn on


def test_a_box_with_changes_of_one_class_is_one_correction() -> None:
    before = np.zeros((20, 20), bool)
    pred = before.copy()
    pred[4:8, 4:8] = True
    wrong = [(pred.copy(), 0)]
    (drag,) = swept(wrong, pred, before, half=10, pad_px=2)
    assert len(drag) == 1 and drag[0][1] == 0 and drag[0][0].sum() == 16


def test_the_careful_user_drags_only_where_most_changes_are_wrong() -> None:
    """``swept_wrong``: a box whose changes are mostly right is not dragged."""
    before = np.zeros((20, 40), bool)
    pred = before.copy()
    pred[2:6, 2:6] = True  # 16 px new building
    ref = before.copy()
    ref[2:6, 2:5] = True  # the reference has 12 of them: only 4 px wrong
    wrong = [(pred & ~ref, 1)]
    assert swept(wrong, pred, before, half=20, pad_px=1, ref=ref, wrong_at_least=0.8) == []
    ref[:] = False  # all wrong: dragged (the box around column 5 holds columns 4-5)
    (drag,) = swept(wrong, pred, before, half=20, pad_px=1, ref=ref, wrong_at_least=0.8)
    assert drag[0][0].sum() == 8 and drag[0][1] == 0
