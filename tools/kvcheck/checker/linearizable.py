"""Linearizability of one key's history: Lowe's just-in-time search over
Wing & Gong's tree, memoized on (set of linearized ops, state) as Porcupine
does.

The history is a doubly linked list of call and return entries in time
order. The search walks it: at a call it tries to linearize that op now (the
model must accept it), removing ("lifting") its call and return from the
list; at a return whose op is not yet linearized, that op had to be
linearized before this point, so it backtracks. The list empty means every
op found a place. An info op's return is at infinity, so it can be placed
anywhere after its call, including after everything else, which is the same
as "it never took effect".

The cache makes the search visit each (linearized set, state) once; its size
is the bound on work: past max_states the answer is "unknown", never a hang.
"""

from dataclasses import dataclass, field
from typing import List, Optional

DEFAULT_MAX_STATES = 200_000


class _Entry:
    __slots__ = ("op", "id", "is_call", "match", "prev", "next")

    def __init__(self, op, op_id, is_call):
        self.op, self.id, self.is_call = op, op_id, is_call
        self.match = self.prev = self.next = None


@dataclass
class SearchResult:
    linearizable: Optional[bool]   # None: gave up (too many states)
    states: int                    # distinct (linearized set, state) pairs seen
    # The longest partial linearization found, and the state after it: where
    # the search got furthest before failing.
    best_order: List = field(default_factory=list)
    best_state: object = None


def _entries(ops):
    """Build the linked list; returns its head sentinel."""
    events = []
    for i, op in enumerate(ops):
        call, ret = _Entry(op, i, True), _Entry(op, i, False)
        call.match = ret
        events.append((op.call, 0, i, call))
        # An info op returns at infinity; a call at the same instant as a
        # return is taken as concurrent with it (calls sort first).
        events.append((float("inf") if op.ret is None else op.ret, 1, i, ret))
    events.sort(key=lambda e: e[:3])
    head = _Entry(None, -1, False)
    prev = head
    for *_, e in events:
        prev.next, e.prev = e, prev
        prev = e
    return head


def _lift(e):
    e.prev.next = e.next
    if e.next:
        e.next.prev = e.prev
    m = e.match
    m.prev.next = m.next
    if m.next:
        m.next.prev = m.prev


def _unlift(e):
    m = e.match
    m.prev.next = m
    if m.next:
        m.next.prev = m
    e.prev.next = e
    if e.next:
        e.next.prev = e


def check(ops, init, step, max_states=DEFAULT_MAX_STATES) -> SearchResult:
    head = _entries(ops)
    state, linearized = init, 0
    cache = {(0, init)}
    stack = []                       # (call entry, state before it)
    best_order, best_state = [], init
    entry = head.next
    while head.next is not None:
        if entry.is_call:
            new_state = step(state, entry.op)
            if new_state is not None:
                new_linearized = linearized | (1 << entry.id)
                key = (new_linearized, new_state)
                if key not in cache:
                    if len(cache) >= max_states:
                        return SearchResult(None, len(cache), best_order, best_state)
                    cache.add(key)
                    stack.append((entry, state))
                    state, linearized = new_state, new_linearized
                    _lift(entry)
                    if len(stack) > len(best_order):
                        best_order = [e.op for e, _ in stack]
                        best_state = state
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # A return whose op is still in the list: it cannot be placed
            # anywhere before here. Undo the last choice and try the next.
            if not stack:
                return SearchResult(False, len(cache), best_order, best_state)
            entry, state = stack.pop()
            linearized &= ~(1 << entry.id)
            _unlift(entry)
            entry = entry.next
    return SearchResult(True, len(cache), [e.op for e, _ in stack], state)
