"""Which acks to send for deliveries settled out of order: one multiple-ack for what is settled in a row.

RabbitMQ numbers a channel's deliveries 1, 2, 3...; `basic.ack(tag, multiple=True)` acks every unacked
delivery up to `tag` in one frame. The worker settles deliveries by batch, and batches can finish out of
order (one waits on a slow vendor while the next is done). `AckBook` keeps the channel's unacked tags in
order and says, for each settled batch:
- when everything before it is settled too: one multiple-ack, at the highest tag not yet acked;
- otherwise: a plain ack per tag of the batch now (so a slow batch never holds the prefetch window of the
  ones behind it), remembered so that the later multiple-ack stops below or covers them harmlessly.
A multiple-ack is only ever sent at a tag still unacked (RabbitMQ closes the channel on an unknown tag),
and never across a tag still in flight. Tags settled by a nack (requeued) count as acked here.

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

    def __len__(self) -> int:
        return len(self._tags)

    def delivered(self, tag: int) -> None:
        """A delivery arrived (tags arrive in increasing order on a channel)."""
        self._tags[tag] = _State.IN_FLIGHT

    def settle(self, tags: Iterable[int], *, acked: Iterable[int] = ()) -> tuple[int | None, list[int]]:
        """`tags` are done (`acked`: those already settled on the channel, e.g. nacked for a requeue).

        Returns (tag for one multiple-ack or None, tags to ack one by one); send the single acks first."""
        done = set(tags)
        already = set(acked)
        head = next(iter(self._tags), None)
        for tag in done | already:
            if tag in self._tags:
                self._tags[tag] = _State.ACKED if tag in already else _State.SETTLED
        if head is None or self._tags.get(head) is _State.IN_FLIGHT:
            singles = sorted(tag for tag in done - already if self._tags.get(tag) is _State.SETTLED)
            for tag in singles:
                self._tags[tag] = _State.ACKED
            return None, singles
        highest: int | None = None
        while self._tags:
            tag, state = next(iter(self._tags.items()))
            if state is _State.IN_FLIGHT:
                break
            del self._tags[tag]
            if state is _State.SETTLED:
                highest = tag
        return highest, []
