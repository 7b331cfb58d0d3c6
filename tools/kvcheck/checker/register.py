"""The versioned register: one key of libkv under SERIAL, as a state machine.

The state is (version, value, live). A key starts absent at version 0. Every
applied write, cas or delete takes version + 1; a delete leaves a tombstone
(live False) whose version later writes continue from. This mirrors
lib/storage/embedded.c: a cas compares against the *visible* version (0 when the key
is absent or deleted), and a delete of a key with no live value writes
nothing and answers not found.

step() returns the state after the op, or None when the op cannot have
returned what it returned in this state. It is deterministic: an info op that
might not have taken effect is placed at infinity by the search, which is the
same as "never" for everything observed.
"""

import json

INITIAL = (0, None, False)

WRITES = ("write", "cas", "delete")
FUNCTIONS = ("read",) + WRITES


def canonical(value):
    """A hashable, exact form of a JSON value, for comparing and memoizing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def relevant(op):
    """Whether the op says anything about the register.

    A failed op did not happen, except a cas conflict, which observed the
    current version. An info read observed nothing.
    """
    if op.outcome == "fail":
        return op.f == "cas" and op.out_version is not None
    if op.outcome == "info":
        return op.f in WRITES
    return True


def check_op_shape(op):
    """A message when the op cannot be a register op, else None."""
    if op.f not in FUNCTIONS:
        return f"line {op.line}: '{op.f}' is not a register operation ({', '.join(FUNCTIONS)})"
    if op.f == "cas" and op.expected is None:
        return f"line {op.line}: a cas needs 'expected'"
    if op.f in ("write", "cas") and op.outcome == "ok" and op.out_version is None:
        return f"line {op.ret_line}: an ok {op.f} needs the new 'version'"
    return None


def step(state, op):
    version, value, live = state
    visible = version if live else 0
    if op.f == "read":
        if op.out_version is None:                      # not found
            return state if not live else None
        if live and op.out_version == version and canonical(op.out_value) == value:
            return state
        return None
    if op.f == "write":
        if op.outcome == "ok" and op.out_version != version + 1:
            return None
        return (version + 1, canonical(op.value), True)
    if op.f == "delete":
        if op.outcome == "info":
            return (version + 1, None, False) if live else state
        if op.out_version is None:                      # answered not found
            return state if not live else None
        if op.out_version != version + 1:
            return None
        return (version + 1, None, False)
    if op.f == "cas":
        if op.outcome == "fail":                        # conflict: saw out_version
            return state if visible != op.expected and visible == op.out_version else None
        if op.expected != visible:
            # An info cas that would conflict here changed nothing.
            return state if op.outcome == "info" else None
        if op.outcome == "ok" and op.out_version != version + 1:
            return None
        return (version + 1, canonical(op.value), True)
    return None


def describe_state(state):
    version, value, live = state
    if not live:
        return f"absent (version {version})" if version else "absent (never written)"
    return f"{value} at version {version}"
