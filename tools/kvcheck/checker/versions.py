"""The version pre-check: anomalies visible without any search.

Under SERIAL each applied write of a key takes the next version, so:
  - no two acknowledged writes can have the same version;
  - a version seen (read, conflict or write) cannot exceed the number of
    writes that may have been applied (ok or info);
  - a read of version n must return the value of the write that made n, and
    that write must have been invoked before the read returned;
  - a live value read at version n that no acknowledged write made must come
    from an info write or cas of that same value.
Each finding names the few ops that contradict each other. The search finds
all of these too, but slower and with a less direct witness.
"""

from .register import WRITES, canonical


def check(ops):
    """ops: one key's relevant register ops. Returns a list of anomalies,
    each {"kind", "message", "ops"}."""
    anomalies = []
    made = {}                            # version -> the ok op that made it
    possible_writes = 0
    for op in ops:
        if op.f not in WRITES:
            continue
        if op.outcome == "info" or (op.outcome == "ok" and op.out_version is not None):
            possible_writes += 1
        if op.outcome == "ok" and op.out_version is not None:
            other = made.get(op.out_version)
            if other is not None:
                anomalies.append({
                    "kind": "duplicate-version",
                    "message": f"two acknowledged writes both made version {op.out_version}",
                    "ops": [other, op]})
            else:
                made[op.out_version] = op

    for op in ops:
        v = op.out_version
        if v is not None and v > possible_writes:
            anomalies.append({
                "kind": "impossible-version",
                "message": f"version {v} seen, but at most {possible_writes} writes "
                           f"of this key may have been applied",
                "ops": [op]})
            continue
        if op.f != "read" or op.outcome != "ok" or v is None:
            continue
        maker = made.get(v)
        if maker is not None:
            if maker.f == "delete":
                anomalies.append({
                    "kind": "read-of-tombstone",
                    "message": f"a live value read at version {v}, which a delete made",
                    "ops": [maker, op]})
            elif canonical(maker.value) != canonical(op.out_value):
                anomalies.append({
                    "kind": "wrong-value",
                    "message": f"read a different value at version {v} than the write "
                               f"that made it",
                    "ops": [maker, op]})
            elif op.ret is not None and maker.call > op.ret:
                anomalies.append({
                    "kind": "read-from-future",
                    "message": f"read version {v} before the write that made it was invoked",
                    "ops": [op, maker]})
            continue
        sources = [w for w in ops if w.f in ("write", "cas") and w.outcome == "info"
                   and canonical(w.value) == canonical(op.out_value)
                   and (op.ret is None or w.call <= op.ret)]
        if not sources:
            anomalies.append({
                "kind": "unwritten-version",
                "message": f"read version {v}, which no acknowledged write made and no "
                           f"unknown-outcome write of that value can explain",
                "ops": [op]})
    return anomalies
