"""AckBook: one multiple-ack for what is settled in a row, single acks past a delivery still in flight."""

from __future__ import annotations

from bot.broker.acks import AckBook


def _book(*tags: int) -> AckBook:
    book = AckBook()
    for tag in tags:
        book.delivered(tag)
    return book


def test_batches_settled_in_order_take_one_multiple_ack_each() -> None:
    book = _book(1, 2, 3, 4, 5, 6)
    assert book.settle([1, 2, 3]) == (3, [])
    assert book.settle([4, 5, 6]) == (6, [])
    assert len(book) == 0


def test_a_batch_behind_one_in_flight_is_acked_one_by_one_and_never_again() -> None:
    book = _book(1, 2, 3, 4, 5, 6)
    assert book.settle([4, 5, 6]) == (None, [4, 5, 6])     # 1-3 still in flight: the window is freed anyway
    # 1-3 done: the multiple-ack stops at 3, the highest tag not acked yet (6 is acked: RabbitMQ would
    # close the channel on it)
    assert book.settle([1, 2, 3]) == (3, [])
    assert len(book) == 0


def test_the_multiple_ack_never_reaches_past_a_delivery_in_flight() -> None:
    book = _book(1, 2, 3, 4, 5)
    assert book.settle([3]) == (None, [3])
    assert book.settle([1]) == (1, [])
    assert book.settle([2]) == (2, [])                       # 3 acked already, 4 still in flight
    assert book.settle([5]) == (None, [5])
    assert book.settle([4]) == (4, [])


def test_nacked_deliveries_count_as_settled_and_are_not_acked() -> None:
    book = _book(1, 2, 3)
    assert book.settle([1, 3], acked=[2]) == (3, [])         # 2 was nacked (requeued): the ack skips over it
    book = _book(1, 2, 3)
    assert book.settle([1], acked=[2, 3]) == (1, [])
    book = _book(1, 2, 3)
    assert book.settle([], acked=[3]) == (None, [])
    assert book.settle([1, 2]) == (2, [])
    assert len(book) == 0


def test_tags_unknown_to_the_book_are_ignored() -> None:
    book = _book(5, 6)
    assert book.settle([1, 5]) == (5, [])
    assert book.settle([6]) == (6, [])
