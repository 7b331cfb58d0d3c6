"""The counter check, for a counter incremented by CAS.

A runner increments with a read-then-cas loop and records one op per
increment: f "add" with value the (non-negative) delta, ok when its cas was
acknowledged, fail when it gave up without applying it, info when the
outcome is unknown. Reads (f "read") return the integer value (null: not
yet written, read as 0).

Every ok read r must lie between
  lower = the sum of ok adds that completed before r was invoked, and
  upper = the sum of ok and info adds invoked before r completed;
the last read is the final value. A read outside its bounds is an anomaly;
the distance is reported (below: lost increments; above: counted twice or
from nowhere).
"""


def check_op_shape(op):
    if op.f not in ("add", "read"):
        return f"line {op.line}: '{op.f}' is not a counter operation (add, read)"
    if op.f == "add" and (not isinstance(op.value, int) or isinstance(op.value, bool)
                          or op.value < 0):
        return f"line {op.line}: a counter add needs a non-negative integer 'value'"
    if op.f == "read" and op.outcome == "ok" and op.out_value is not None and (
            not isinstance(op.out_value, int) or isinstance(op.out_value, bool)):
        return f"line {op.ret_line}: a counter read returns an integer 'value'"
    return None


def check_key(ops):
    adds = [op for op in ops if op.f == "add" and op.outcome in ("ok", "info")]
    reads = sorted((op for op in ops if op.f == "read" and op.outcome == "ok"),
                   key=lambda o: o.call)
    anomalies = []
    for r in reads:
        got = r.out_value or 0
        lower = sum(a.value for a in adds if a.outcome == "ok" and a.ret < r.call)
        upper = sum(a.value for a in adds if a.call <= r.ret)
        if got < lower:
            anomalies.append({"kind": "lost-increments",
                              "message": f"read {got}, but {lower} was acknowledged "
                                         f"before it began ({lower - got} missing)",
                              "ops": [r]})
        elif got > upper:
            anomalies.append({"kind": "extra-increments",
                              "message": f"read {got}, but at most {upper} may have been "
                                         f"added by its end ({got - upper} too many)",
                              "ops": [r]})
    ok_sum = sum(a.value for a in adds if a.outcome == "ok")
    info_sum = sum(a.value for a in adds if a.outcome == "info")
    summary = {"acknowledged": ok_sum, "unknown": info_sum,
               "final": (reads[-1].out_value or 0) if reads else None}
    if reads:
        summary["final_minus_acknowledged"] = summary["final"] - ok_sum
    return {"valid": not anomalies, "anomalies": anomalies, "summary": summary}
