"""The history checker itself must catch stale and future reads."""
from tests.history import violations

W = [[0, 1, 100, 200], [0, 2, 300, 400]]


def test_valid_reads_pass():
    assert violations(W, [[0, 0, 50, 90], [0, 1, 250, 280], [0, 1, 350, 380], [0, 2, 350, 380], [0, 0, 150, 160]]) == []


def test_stale_and_future_reads_are_caught():
    assert len(violations(W, [[0, 1, 450, 460]])) == 1  # seq 2 completed at 400
    assert len(violations(W, [[0, 2, 250, 280]])) == 1  # seq 2 started at 300
    assert len(violations(W, [[0, 0, 250, 260]])) == 1
