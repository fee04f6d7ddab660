"""AckBook: one multiple-ack for what is settled in a row, single acks past a delivery still in flight."""

from __future__ import annotations

from bot.broker.acks import AckBook


def _book(*tags: int) -> AckBook:
    book = AckBook()
    for tag in tags:
        book.delivered(tag)
    return book


def test_what_is_settled_in_a_row_takes_one_multiple_ack() -> None:
    book = _book(1, 2, 3, 4, 5, 6)
    book.settle([1, 2, 3])
    assert book.take() == (3, [])
    book.settle([4, 5])
    book.settle([6])                                        # two batches done in one turn: one ack
    assert book.take() == (6, [])
    assert len(book) == 0 and book.take() == (None, [])


def test_a_batch_behind_one_in_flight_is_acked_one_by_one_and_never_again() -> None:
    book = _book(1, 2, 3, 4, 5, 6)
    book.settle([4, 5, 6])
    assert book.take() == (None, [4, 5, 6])                 # 1-3 in flight: the window is freed anyway
    book.settle([1, 2, 3])
    # the multiple-ack stops at 3, the highest tag not acked yet (6 is: RabbitMQ would close the channel)
    assert book.take() == (3, [])
    assert len(book) == 0


def test_the_multiple_ack_never_reaches_past_a_delivery_in_flight() -> None:
    book = _book(1, 2, 3, 4, 5)
    book.settle([3])
    assert book.take() == (None, [3])
    book.settle([1])
    assert book.take() == (1, [])
    book.settle([2, 5])
    assert book.take() == (2, [5])                          # 3 acked already, 4 still in flight
    book.settle([4])
    assert book.take() == (4, [])
    assert len(book) == 0


def test_nacked_deliveries_count_as_settled_and_are_not_acked() -> None:
    book = _book(1, 2, 3)
    book.settle([1, 3], acked=[2])                          # 2 was nacked (requeued): the ack skips over it
    assert book.take() == (3, [])
    book = _book(1, 2, 3)
    book.settle([1], acked=[2, 3])
    assert book.take() == (1, [])
    book = _book(1, 2, 3)
    book.settle([], acked=[3])
    assert book.take() == (None, [])
    book.settle([1, 2])
    assert book.take() == (2, [])
    assert len(book) == 0


def test_tags_unknown_or_settled_twice_are_ignored() -> None:
    book = _book(5, 6)
    book.settle([1, 5])
    book.settle([5])
    assert book.take() == (5, [])
    book.settle([6])
    assert book.take() == (6, [])
