"""Which acks to send for deliveries settled out of order: one multiple-ack for what is settled in a row.

RabbitMQ numbers a channel's deliveries 1, 2, 3...; `basic.ack(tag, multiple=True)` acks every unacked
delivery up to `tag` in one frame. The worker settles deliveries by batch, batches can finish out of order
(one waits on a slow vendor while the next is done), and several finish in one turn of the event loop.
`AckBook` keeps a channel's unacked tags in order; deliveries are `settle`d as they finish, and once per
turn `take` says what to send:
- one multiple-ack at the highest settled tag below the first delivery still in flight;
- a plain ack for each settled tag above it (so a slow batch never holds the prefetch window of the ones
  behind it), remembered so that the later multiple-ack stops below them or covers them harmlessly.
A multiple-ack is only ever sent at a tag still unacked (RabbitMQ closes the channel on an unknown tag),
and never across a delivery in flight. Tags settled by a nack (requeued) count as acked here.

Pure bookkeeping, one book per channel: after a reconnect, tags restart on the new channel.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from enum import Enum

__all__ = ["AckBook"]


class _State(Enum):
    IN_FLIGHT = 1
    SETTLED = 2     # done, not yet acked
    ACKED = 3       # acked (or nacked) on its own already


class AckBook:
    """The unacked deliveries of one channel, in tag order."""

    def __init__(self) -> None:
        self._tags: OrderedDict[int, _State] = OrderedDict()
        self._settled = 0           # tags SETTLED now: `take` has something to say

    def __len__(self) -> int:
        return len(self._tags)

    def delivered(self, tag: int) -> None:
        """A delivery arrived (tags arrive in increasing order on a channel)."""
        self._tags[tag] = _State.IN_FLIGHT

    def settle(self, tags: Iterable[int], *, acked: Iterable[int] = ()) -> None:
        """`tags` are done; `acked`: done and already settled on the channel (e.g. nacked for a requeue)."""
        for tag, state in ((tag, _State.SETTLED) for tag in tags):
            if self._tags.get(tag) is _State.IN_FLIGHT:
                self._tags[tag] = state
                self._settled += 1
        for tag in acked:
            if self._tags.get(tag) is _State.IN_FLIGHT:
                self._tags[tag] = _State.ACKED

    def take(self) -> tuple[int | None, list[int]]:
        """(tag for one multiple-ack or None, tags to ack one by one) for everything settled so far; send
        them in the order `take` was called (a multiple-ack overtaking an earlier single ack below it would
        ack that tag twice)."""
        highest: int | None = None
        while self._tags:
            tag, state = next(iter(self._tags.items()))
            if state is _State.IN_FLIGHT:
                break
            del self._tags[tag]
            if state is _State.SETTLED:
                highest = tag
                self._settled -= 1
        singles: list[int] = []
        if self._settled:
            singles = [tag for tag, state in self._tags.items() if state is _State.SETTLED]
            for tag in singles:
                self._tags[tag] = _State.ACKED
            self._settled = 0
        return highest, singles
