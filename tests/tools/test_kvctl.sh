#!/usr/bin/env bash
# test_kvctl.sh - kvctl against a real kvd on 127.0.0.1.
#
#   test_kvctl.sh KVCTL KVD [KVBENCH]
#
# Starts one kvd with a fresh data directory on a random port, waits until
# `kvctl health` answers, then checks kvctl's outputs and exit codes: put,
# get, del, cas (conflict prints the current version), a value from stdin
# ("-") or a file ("@FILE"), batch from a file and from stdin, -w json (parsed
# with python3), a binary value with a NUL, TTL expiry, usage errors (empty
# keys among them), --help and --version (of kvbench too: KVBENCH defaults to
# the kvbench built beside kvctl), backup (a snapshot per node, refusals,
# usage errors), an endpoint with nothing listening, an
# endpoint that is a node's HTTP port, scan (pages, --limit, --cursor,
# --keys-only, JSON, mistakes), siblings resolved with --context on a
# node that is a cluster of one, a cluster of three (get --verbose, a write
# at ALL with a node down, a member restarted alone), kvd --help against the
# flags kvd.c parses, examples/kvd.json, and kvbench's asynchronous load
# (--depth, --server-pids). The trap kills
# only the kvd processes this script started. No timing assertions: waits
# are bounded loops that poll for a state.
set -u

KVCTL=${1:?usage: test_kvctl.sh KVCTL KVD [KVBENCH]}
KVD=${2:?usage: test_kvctl.sh KVCTL KVD [KVBENCH]}
KVBENCH=${3:-$(dirname "$KVCTL")/../kvbench/kvbench}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_kvctl.XXXXXX")
kvd_pid=
cluster_pids=()
cleanup() {
    for pid in $kvd_pid "${cluster_pids[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

failures=0
fail() {
    echo "FAIL: $*" >&2
    echo "  stdout: $(head -c 400 "$tmp/out" 2>/dev/null)" >&2
    echo "  stderr: $(head -c 400 "$tmp/err" 2>/dev/null)" >&2
    failures=$((failures + 1))
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ------------------------------------------------------------ start kvd
# start_kvd LOG ARGS...: starts kvd with ARGS on a random free port of
# 127.0.0.1 ("@PORT@" in ARGS stands for it), waits (bounded) until it logs
# "ready", and sets started_port and kvd_pid; a few ports are tried.
# started_port stays empty when it never started (LOG tells why).
start_kvd() {
    local log=$1 p
    shift
    started_port=
    for attempt in 1 2 3 4 5; do
        p=$((20000 + RANDOM % 20001))
        listening "$p" && continue
        "$KVD" --listen "127.0.0.1:$p" "${@//@PORT@/$p}" 2>"$log" &
        kvd_pid=$!
        for _ in $(seq 100); do # up to ~10 s
            grep -q '"ready' "$log" 2>/dev/null && break
            kill -0 "$kvd_pid" 2>/dev/null || break
            sleep 0.1
        done
        if grep -q '"ready' "$log" && kill -0 "$kvd_pid" 2>/dev/null; then
            started_port=$p
            return
        fi
        kill "$kvd_pid" 2>/dev/null
        wait "$kvd_pid" 2>/dev/null
        kvd_pid=
    done
}

rm -rf "$tmp/data"
start_kvd "$tmp/kvd.log" --data "$tmp/data" --node-id kvctl-test --http 127.0.0.1:0
port=$started_port
# Its HTTP port, from the "ready" line.
hport=$(sed -n 's/.*"ready: .*http port \([0-9]*\),.*/\1/p' "$tmp/kvd.log")
if [[ -z $port ]]; then
    echo "FAIL: kvd did not start; its log:" >&2
    cat "$tmp/kvd.log" >&2
    exit 1
fi
EP=127.0.0.1:$port

# kc ARGS...: run kvctl against the node; sets $rc, output in $tmp/out, $tmp/err.
kc() {
    "$KVCTL" --endpoints "$EP" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}
# expect CODE STDOUT DESCRIPTION: check the last kc's exit code and stdout.
expect() {
    local code=$1 want=$2 what=$3
    if [[ $rc -ne $code ]]; then
        fail "$what: exit $rc, expected $code"
    elif [[ $(cat "$tmp/out") != "$want" ]]; then
        fail "$what: stdout '$(cat "$tmp/out")', expected '$want'"
    fi
}
expect_rc() {
    [[ $rc -eq $1 ]] || fail "$2: exit $rc, expected $1"
}
# json_check PYTHON_EXPR DESCRIPTION: the last stdout is one JSON object d
# for which the expression holds.
json_check() {
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($1) else 1)" \
        "$tmp/out" 2>>"$tmp/err" || fail "$2: JSON check '$1'"
}

ok=
for _ in $(seq 100); do # up to ~10 s
    if "$KVCTL" --endpoints "$EP" --timeout 500 health >"$tmp/out" 2>"$tmp/err"; then
        ok=1
        break
    fi
    sleep 0.1
done
[[ -n $ok ]] || { fail "kvctl health never succeeded"; exit 1; }
[[ $(cat "$tmp/out") == ok ]] || fail "health prints ok"

# ------------------------------------------------------- put, get, del
# members and ring of a cluster of one
kc members;             expect_rc 0 "members"
grep -q "^kvctl-test .*127.0.0.1:$port" "$tmp/out" || fail "members lists the node: $(cat "$tmp/out")"
kc ring;                expect_rc 0 "ring"
grep -q "100.00% *100.00%" "$tmp/out" || fail "a node alone owns the whole ring: $(cat "$tmp/out")"
kc -w json members;     expect_rc 0 "members -w json"
json_check 'd["complete"] and [m["nodeId"] for m in d["members"]] == ["kvctl-test"]' "members json"
# ... with what the node knows of failures: itself up, no hints.
json_check 'd["failures"]["membersUp"] == 1 and d["failures"]["hintsPending"] == 0' "members json failures"
kc members;             expect_rc 0 "members"
grep -q "^kvctl-test sees 1 up and 0 down" "$tmp/out" || fail "members shows the failure figures: $(cat "$tmp/out")"
grep -q "^hints pending 0 (oldest 0.0 s), replayed 0, dropped 0; sloppy writes 0" "$tmp/out" || fail "members shows the hint figures: $(cat "$tmp/out")"
# ... and the node's store figures (its estimated keys and bytes on disk).
grep -q "^NODE .* KEYS(EST) *DISK$" "$tmp/out" || fail "members has the store columns: $(cat "$tmp/out")"
kc -w json members;     expect_rc 0 "members -w json"
json_check '"estimatedKeys" in d["members"][0]["storage"] and "liveSstBytes" in d["storage"]' "members json storage figures"

# ------------------------------------------------------------------- scan
# The store is empty here: a scan prints nothing.
kc scan;                expect 0 "" "scan of an empty store"
kc -w json scan;        expect_rc 0 "scan -w json of an empty store"
json_check 'd == {"items": [], "cursor": None}' "empty scan json"
for i in 1 2 3 4 5; do
    kc put "sc-$i" "val-$i"; expect 0 "version 1" "put sc-$i for the scan"
done
kc scan;                expect_rc 0 "scan"
[[ $(sort "$tmp/out") == "$(printf 'sc-%s\tval-%s\n' 1 1 2 2 3 3 4 4 5 5)" ]] ||
    fail "scan prints KEY<TAB>VALUE for every key: $(cat "$tmp/out")"
[[ ! -s $tmp/err ]] || fail "a whole scan says nothing on stderr"
kc scan --keys-only;    expect_rc 0 "scan --keys-only"
[[ $(sort "$tmp/out") == "$(printf 'sc-%s\n' 1 2 3 4 5)" ]] || fail "scan --keys-only prints keys: $(cat "$tmp/out")"
# --limit stops after N keys and says where to go on; --cursor goes on.
kc scan --limit 2 --keys-only; expect_rc 0 "scan --limit 2"
[[ $(wc -l <"$tmp/out") -eq 2 ]] || fail "scan --limit 2 prints 2 keys: $(cat "$tmp/out")"
first=$(cat "$tmp/out")
cursor=$(sed -n 's/.*--cursor \([0-9a-f]*\)$/\1/p' "$tmp/err")
[[ -n $cursor ]] || fail "scan --limit says which cursor goes on: $(cat "$tmp/err")"
kc scan --keys-only --cursor "$cursor"; expect_rc 0 "scan --cursor"
[[ $(printf '%s\n%s\n' "$first" "$(cat "$tmp/out")" | sort) == "$(printf 'sc-%s\n' 1 2 3 4 5)" ]] ||
    fail "the two halves of a scan are every key once: $first / $(cat "$tmp/out")"
kc -w json scan --limit 3; expect_rc 0 "scan -w json --limit 3"
json_check 'len(d["items"]) == 3 and isinstance(d["cursor"], str) and all(i["value"] == "val-" + i["key"][3:] and i["version"] == 1 for i in d["items"])' "scan json page"
kc -w json scan --keys-only; expect_rc 0 "scan -w json --keys-only"
json_check 'sorted(i["key"] for i in d["items"]) == ["sc-%d" % i for i in range(1, 6)] and all("value" not in i for i in d["items"]) and d["cursor"] is None' "scan json keys only"
kc put "sc-bin" - < <(printf 'a\0b'); expect 0 "version 1" "put a binary value for the scan"
kc -w json scan;        expect_rc 0 "scan -w json with a binary value"
json_check '[i for i in d["items"] if i.get("encoding") == "base64"] == [{"key": "c2MtYmlu", "value": "YQBi", "version": 1, "encoding": "base64"}]' "scan json base64 item"
kc del sc-bin;          expect_rc 0 "del sc-bin"
# Mistakes: usage errors (exit 2), a bad cursor (exit 1, BAD_REQUEST).
for args in "scan --limit 0" "scan --limit x" "scan --limit -1" "scan extra" \
            "scan --consistency serial" "get k --keys-only" "put k v --limit 3" \
            "get k --cursor 00"; do
    kc $args;           expect_rc 2 "kvctl $args is a usage error"
done
kc scan --cursor zz;    expect_rc 1 "scan with a malformed cursor"
grep -q "cursor" "$tmp/err" || fail "a bad cursor is named: $(cat "$tmp/err")"
kc -w json scan --cursor 0011; expect_rc 1 "scan -w json with a malformed cursor"
json_check 'd["error"]["code"] == "BAD_REQUEST"' "bad cursor json"
for i in 1 2 3 4 5; do
    kc del "sc-$i";     expect_rc 0 "del sc-$i after the scan tests"
done
kc scan;                expect 0 "" "deleted keys are not scanned"

kc put k1 v1;           expect 0 "version 1" "put new key"
kc get k1;              expect 0 "v1" "get"
kc put k1 "v 2";        expect 0 "version 2" "put again"
kc get k1;              expect 0 "v 2" "get after overwrite"
kc get missing;         expect 3 "" "get missing key"
# A node alone: the levels are accepted, and --verbose has no replicas to list.
kc get k1 --consistency all --verbose; expect 0 "v 2" "get --verbose on a single node"
kc -w json get k1 -v;   expect_rc 0 "get -v -w json"
json_check 'd["value"] == "v 2" and d["replicas"] == []' "get --verbose json"
kc put kone x --consistency one; expect 0 "version 1" "put at ONE"
kc put khome x --home-only; expect 0 "version 1" "put --home-only (a node alone is its key's only home)"
kc del k1;              expect 0 "version 3" "del"
kc get k1;              expect 3 "" "get after del"
kc del k1;              expect 3 "" "del of a deleted key"
kc put k1 again;        expect 0 "version 4" "put after del continues the versions"
kc put -- -dash -value; expect 0 "version 1" "-- ends flags"
kc get -- -dash;        expect 0 "-value" "get a key starting with -"
kc put empty "";        expect 0 "version 1" "put empty value"
kc get empty;           expect 0 "" "get empty value"

# VALUE "-" reads stdin and "@FILE" a file, byte for byte; after "--" both
# are literal.
printf 'x\0y\377\n' >"$tmp/bin.in"
"$KVCTL" --endpoints "$EP" put vin - <"$tmp/bin.in" >"$tmp/out" 2>"$tmp/err"; rc=$?
expect 0 "version 1" "put a binary value from stdin"
kc get vin;             expect_rc 0 "get the value put from stdin"
{ cat "$tmp/bin.in"; echo; } | cmp -s - "$tmp/out" || fail "value from stdin: bytes differ: $(od -c "$tmp/out")"
kc put vfile "@$tmp/bin.in"; expect 0 "version 1" "put a value from @FILE"
kc get vfile;           expect_rc 0 "get the value put from @FILE"
{ cat "$tmp/bin.in"; echo; } | cmp -s - "$tmp/out" || fail "value from @FILE: bytes differ: $(od -c "$tmp/out")"
kc put vempty - </dev/null; expect 0 "version 1" "put an empty stdin"
kc get vempty;          expect 0 "" "get the empty value from stdin"
kc put vmissing "@$tmp/no-such-file"; expect 2 "" "put from a missing @FILE"
grep -q "cannot open $tmp/no-such-file" "$tmp/err" || fail "a missing @FILE is named on stderr"
kc -w json put vmissing "@$tmp/no-such-file"; expect_rc 2 "json put from a missing @FILE"
json_check 'd["error"]["code"] == "USAGE"' "json missing @FILE"
kc put vmissing @;      expect_rc 2 "put @ without a file name"
kc get vmissing;        expect_rc 3 "nothing written from a missing @FILE"
kc put vlit -- -;       expect 0 "version 1" "put -- - keeps a literal -"
kc get vlit;            expect 0 "-" "get the literal -"
kc put -- vat "@$tmp/bin.in"; expect 0 "version 1" "put -- KEY @FILE keeps a literal @..."
kc get vat;             expect 0 "@$tmp/bin.in" "get the literal @..."
printf 'from\0stdin' | "$KVCTL" --endpoints "$EP" cas vin 1 - >"$tmp/out" 2>"$tmp/err"; rc=$?
expect 0 "version 2" "cas with a value from stdin"
kc get vin;             expect_rc 0 "get after cas from stdin"
printf 'from\0stdin\n' | cmp -s - "$tmp/out" || fail "cas from stdin: bytes differ: $(od -c "$tmp/out")"
kc cas vfile 1 "@$tmp/bin.in"; expect 0 "version 2" "cas with a value from @FILE"
kc cas vlit 1 -- -;     expect 0 "version 2" "cas -- - keeps a literal -"
kc get vlit;            expect 0 "-" "get the literal - after cas"
# Over the library's 64 MiB ceiling: refused before anything is sent.
head -c $((64 * 1024 * 1024 + 1)) /dev/zero |
    "$KVCTL" --endpoints "$EP" put vbig - >"$tmp/out" 2>"$tmp/err"; rc=$?
expect 1 "" "put of more than 64 MiB from stdin"
grep -q "larger than 64 MiB" "$tmp/err" || fail "the 64 MiB ceiling is named on stderr"
KVCTL_ENDPOINTS=$EP "$KVCTL" get k1 >"$tmp/out" 2>"$tmp/err"; rc=$?
expect 0 "again" "endpoints from KVCTL_ENDPOINTS"
kc --endpoints "127.0.0.1:1,$EP" get k1
expect 0 "again" "second endpoint used when the first is down"

# ----------------------------------------------------------------- cas
kc cas c1 0 first;      expect 0 "version 1" "cas 0 on an absent key"
kc cas c1 0 second;     expect 4 "version 1" "cas conflict prints the current version"
grep -qi conflict "$tmp/err" || fail "cas conflict message on stderr"
kc cas c1 1 second;     expect 0 "version 2" "cas with the current version"
kc get c1;              expect 0 "second" "get after cas"
kc cas c1 7 third;      expect 4 "version 2" "cas with a stale version"

# ---------------------------------------------------------------- json
kc -w json put j1 hello
expect_rc 0 "json put"; json_check 'd == {"version": 1}' "json put"
kc get j1 -w json
expect_rc 0 "json get"
json_check 'd["key"] == "j1" and d["value"] == "hello" and d["version"] == 1 and "expiresAt" not in d' "json get"
kc -w json put j2 'quote " backslash \ tab	é'
expect_rc 0 "json put of text needing escapes"
kc -w json get j2
json_check 'd["value"] == "quote \" backslash \\ tab\té" and "encoding" not in d' "json escapes"
kc -w json get nope
expect_rc 3 "json get missing"; json_check 'd["error"]["code"] == "NOT_FOUND"' "json not found"
kc -w json cas j1 0 x
expect_rc 4 "json cas conflict"
json_check 'd["error"]["code"] == "CONFLICT" and d["version"] == 1' "json conflict"
kc -w json del j1
expect_rc 0 "json del"; json_check 'd["version"] == 2' "json del"
kc -w json health
expect_rc 0 "json health"; json_check 'd["status"] == "ok"' "json health"
kc -w json bogus
expect_rc 2 "json usage error"; json_check 'd["error"]["code"] == "USAGE"' "json usage error"

# --------------------------------------------------------------- batch
cat >"$tmp/batch.json" <<'EOF'
{"operations": [
  {"op": "PUT", "key": "b1", "value": "one", "ttl": 600},
  {"op": "GET", "key": "b1"},
  {"op": "DELETE", "key": "b3"},
  {"op": "PUT", "key": "Ymlu", "value": "YQBi", "encoding": "base64"},
  {"op": "get", "key": "k1"}
]}
EOF
kc batch "$tmp/batch.json"
expect 0 "PUT b1 version 1
GET b1 version 1 value one
DELETE b3 NOT_FOUND
PUT bin version 1
GET k1 version 4 value again" "batch from a file"

echo '{"operations":[{"op":"GET","key":"bin"},{"op":"DELETE","key":"b1"},{"op":"GET","key":"b1"}]}' |
    "$KVCTL" --endpoints "$EP" -w json batch - >"$tmp/out" 2>"$tmp/err"
rc=$?
expect_rc 0 "json batch from stdin"
r='d["results"]'
json_check "len($r) == 3 and $r[0]['key'] == 'Ymlu' and $r[0]['value'] == 'YQBi' and $r[0]['encoding'] == 'base64' and $r[0]['status'] == 'OK' and $r[1]['op'] == 'DELETE' and $r[1]['version'] == 2 and $r[2]['status'] == 'NOT_FOUND' and 'encoding' not in $r[1]" "json batch from stdin"

# A value with a NUL comes back byte for byte (then a newline); in JSON the
# object's key and value are then both base64, as in the HTTP API.
kc get bin
expect_rc 0 "get binary value"
printf 'a\0b\n' | cmp -s - "$tmp/out" || fail "get binary value: bytes differ: $(od -c "$tmp/out")"
kc -w json get bin
json_check 'd["key"] == "Ymlu" and d["value"] == "YQBi" and d["encoding"] == "base64"' "json get binary value"

echo 'not json' | "$KVCTL" --endpoints "$EP" batch - >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 2 "malformed batch"
echo '{"operations":[{"op":"PUT","key":"x"}]}' | "$KVCTL" --endpoints "$EP" batch - >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 2 "batch PUT without a value"
kc batch "$tmp/does-not-exist.json"
expect_rc 2 "batch of a missing file"

# ----------------------------------------------------------------- TTL
kc put t1 short --ttl 1
expect 0 "version 1" "put with --ttl"
expired=
for _ in $(seq 50); do # expiry is 1 s away; poll up to ~10 s
    kc get t1
    if [[ $rc -eq 3 ]]; then expired=1; break; fi
    [[ $rc -eq 0 ]] || { fail "get of a value with a TTL: exit $rc"; break; }
    sleep 0.2
done
[[ -n $expired ]] || fail "value with --ttl 1 never expired"
kc put t2 long --ttl 3600 -w json
expect_rc 0 "put with a long TTL"
kc -w json get t2
json_check 'isinstance(d["expiresAt"], int) and d["expiresAt"] > 0' "json expiresAt"

# -------------------------------------------------------------- backup
# kvctl backup DIR: the node (a cluster of one) snapshots into DIR/<node-id>,
# one line: id, path, size; the same DIR again is refused, naming the node;
# usage errors exit 2 and write nothing.
kc backup "$tmp/bk"
expect_rc 0 "backup"
grep -Eq "^kvctl-test +$tmp/bk/kvctl-test [0-9]+ bytes$" "$tmp/out" || fail "backup prints id, path, size"
[[ -f $tmp/bk/kvctl-test/kv-backup.json && -f $tmp/bk/kvctl-test/CURRENT ]] ||
    fail "backup wrote a checkpoint and its manifest into DIR/<node-id>"
kc backup "$tmp/bk"
expect_rc 1 "backup into an existing directory"
grep -q "kvctl-test" "$tmp/err" && grep -q "already exists" "$tmp/err" ||
    fail "a refused backup names the node and why"
kc -w json backup "$tmp/bk2"
expect_rc 0 "json backup"
json_check 'd["nodes"][0]["status"] == "OK" and d["nodes"][0]["nodeId"] == "kvctl-test" and d["nodes"][0]["bytes"] > 0' "json backup"
kc -w json backup "$tmp/bk2"
expect_rc 1 "json backup into an existing directory"
json_check 'd["error"]["code"] == "BAD_REQUEST" and d["nodes"][0]["status"] == "BAD_REQUEST"' "json refused backup"
kc backup;                   expect 2 "" "backup without DIR"
kc backup a b;               expect 2 "" "backup with two DIRs"
kc backup relative/dir;      expect 2 "" "backup of a relative DIR"
grep -q "absolute" "$tmp/err" || fail "a relative backup DIR says it must be absolute"
kc backup '';                expect 2 "" "backup of an empty DIR"
kc backup "/$(head -c 1100 /dev/zero | tr '\0' a)"; expect 2 "" "backup of an oversize DIR"
[[ ! -e relative ]] || fail "a refused backup created nothing"

# ----------------------------------------------------------------- top
# kvctl top: the key read and written most lately comes first, with its
# count and share; the others are far behind.
for i in $(seq 40); do
    kc put hotkey-x "v$i"
    kc get hotkey-x
done
kc -w json top;              expect_rc 0 "top -w json"
# (Counts cover the last 10-20 s: a slow machine may let the loop's first
# requests slide out, so the check is the order, not the count.)
json_check 'd["nodesAsked"] == 1 and d["reads"]["keys"][0]["key"] == "hotkey-x" and d["reads"]["keys"][0]["count"] >= 1 and d["writes"]["keys"][0]["key"] == "hotkey-x" and 0 < d["writes"]["keys"][0]["share"] <= 1 and d["reads"]["total"] >= 1' "top json: the hot key first"
kc top;                      expect_rc 0 "top"
grep -q "^reads: [0-9]* lately$" "$tmp/out" || fail "top has a reads section: $(cat "$tmp/out")"
grep -Eq "^ +[0-9]+ +[0-9.]+% +1  hotkey-x$" "$tmp/out" || fail "top lists the hot key: $(cat "$tmp/out")"
for args in "top extra" "get k --watch" "-w json top --watch"; do
    kc $args;                expect_rc 2 "kvctl $args is a usage error"
done

# --------------------------------------------------------------- stats
# kvctl stats: per node, the requests per second and GET/PUT quantiles of
# an interval, from two of the node's descriptions. Reads and writes go on
# for the whole interval (until stats ends), so it sees both.
"$KVCTL" --endpoints "$EP" -w json stats --interval 2 >"$tmp/stats.json" 2>"$tmp/stats.err" &
stats_pid=$!
for i in $(seq 600); do # bounded: ~10 ms a call, stats ends after ~2 s
    kill -0 "$stats_pid" 2>/dev/null || break
    "$KVCTL" --endpoints "$EP" put "st-$((i % 7))" v >/dev/null 2>&1
    "$KVCTL" --endpoints "$EP" get "st-$((i % 7))" >/dev/null 2>&1
done
wait "$stats_pid"; rc=$?
cp "$tmp/stats.json" "$tmp/out"; cp "$tmp/stats.err" "$tmp/err"
expect_rc 0 "stats -w json"
json_check 'len(d["nodes"]) == 1 and d["nodes"][0]["nodeId"] == "kvctl-test" and 1.5 < d["nodes"][0]["intervalSeconds"] < 60' "stats json: the node and its interval"
for op in get put; do
    json_check "(lambda o: o['perSecond'] > 0 and 0 < o['p50Ms'] <= o['p99Ms'] <= o['p999Ms'] < 10000)(d['nodes'][0]['ops']['$op'])" "stats json: $op rate and ordered quantiles"
done
json_check 'd["nodes"][0]["ops"]["cas"]["perSecond"] == 0 and d["nodes"][0]["ops"]["cas"]["p99Ms"] is None' "stats json: no CAS, no quantile"
kc stats --interval 1;       expect_rc 0 "stats"
grep -q "^NODE  *REQUESTS/S  *GET/S  *GET P50  *P99  *P999  *PUT/S  *PUT P50  *P99  *P999$" "$tmp/out" || fail "stats has its header: $(cat "$tmp/out")"
grep -q "^kvctl-test  *[0-9.]* " "$tmp/out" || fail "stats has a line for the node: $(cat "$tmp/out")"
for args in "stats --interval 0" "stats --interval x" "stats --interval 3601" "stats extra" "get k --interval 1"; do
    kc $args;                expect_rc 2 "kvctl $args is a usage error"
done

# --------------------------------------------------------- usage errors
kc;                          expect_rc 2 "no command"
kc frobnicate;               expect_rc 2 "unknown command"
kc --frobnicate get k1;      expect_rc 2 "unknown flag"
kc put onlykey;              expect_rc 2 "put without a value"
kc get a b;                  expect_rc 2 "get with two keys"
kc cas k one v;              expect_rc 2 "non-numeric cas version"
kc put k v --ttl soon;       expect_rc 2 "non-numeric ttl"
kc get k1 --ttl 5;           expect_rc 2 "--ttl on get"
kc -w yaml get k1;           expect_rc 2 "bad -w"
kc get k1 --consistency most; expect_rc 2 "bad --consistency"
kc get k1 --policy newest;   expect_rc 2 "bad --policy"
kc put k v --verbose;        expect_rc 2 "--verbose on put"
grep -q "usage:" "$tmp/err" || fail "usage line on a usage error"
# An empty key is the command line's mistake, not the library's.
kc get '';                   expect 2 "" "get of an empty key"
grep -q "KEY must not be empty" "$tmp/err" || fail "an empty key says so"
kc put '' v;                 expect 2 "" "put of an empty key"
kc del '';                   expect 2 "" "del of an empty key"
kc cas '' 0 v;               expect 2 "" "cas of an empty key"
kc -w json get '';           expect_rc 2 "json get of an empty key"
json_check 'd["error"]["code"] == "USAGE"' "json empty key"
kc put k v --context '!not base64!'; expect 2 "" "malformed --context"
kc put k v --context '';     expect 2 "" "empty --context"
kc get k1 --context AQ==;    expect 2 "" "--context on get"
"$KVCTL" --help >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 0 "--help"
grep -q "^usage: kvctl" "$tmp/out" || fail "--help prints the usage on stdout"
# --help lists every command of kvctl's command table.
src=$(dirname "$0")/../../tools/kvctl/kvctl.c
cmds=$(sed -n '/^} commands\[\] = {/,/^};/p' "$src" | sed -n 's/^ *{"\([a-z]*\)",.*/\1/p')
[[ $(echo "$cmds" | wc -w) -ge 8 ]] || fail "the command table of $src: '$cmds'"
for cmd in $cmds; do
    grep -q "^  $cmd\( \|$\)" "$tmp/out" || fail "--help lists the command $cmd"
done

# kvd --help lists every flag its parser takes, each with its default (or
# "required") and its config key; every config key is in docs/CONFIG.md and
# in examples/kvd.json.
root=$(dirname "$0")/../..
"$KVD" --help >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 0 "kvd --help"
flags=$(sed -n 's/.*strcmp(flag, "\(--[a-z-]*\)").*/\1/p' "$root/tools/kvd/kvd.c" | sort -u)
[[ $(echo "$flags" | wc -w) -ge 25 ]] || fail "the flags of kvd.c: '$flags'"
for flag in $flags; do
    # The flag's entry: its line and the indented lines under it.
    entry=$(awk -v f="$flag" '
        $1 == f || ($1 ~ /,$/ && $2 == f) { on = 1; print; next }
        on && /^          / { print; next }
        on { exit }' "$tmp/out")
    [[ -n $entry ]] || { fail "kvd --help lists $flag"; continue; }
    case $flag in
    --help | --version | --config) ;;
    *) grep -Eq 'default|required' <<<"$entry" || fail "kvd --help gives the default of $flag" ;;
    esac
done
# A bad value is a usage error (exit 2) that names the flag and its range.
for bad in 0 3600001 x ""; do
    "$KVD" --data "$tmp/never" --node-id x --listen 127.0.0.1:1 --slow-request "$bad" \
        >/dev/null 2>"$tmp/bad.err"; rc=$?
    expect_rc 2 "kvd --slow-request '$bad'"
    grep -q -- "--slow-request must be 1..3600000" "$tmp/bad.err" ||
        fail "kvd --slow-request '$bad' names its range"
done
keys=$(sed -n '/^static int load_config/,/^}/p' "$root/tools/kvd/kvd.c" |
    sed -n 's/.*strcmp(k, "\([A-Za-z]*\)").*/\1/p' | sort -u)
[[ $(echo "$keys" | wc -w) -ge 25 ]] || fail "the config keys of kvd.c: '$keys'"
for key in $keys; do
    grep -qF "[$key]" "$tmp/out" || fail "kvd --help names the config key $key"
    grep -q "^| \`$key\` |" "$root/docs/CONFIG.md" || fail "CONFIG.md explains the key $key"
    grep -q "^  \"$key\": " "$root/examples/kvd.json" || fail "examples/kvd.json holds the key $key"
done

# Every replica status kv_get_traced can report (get --verbose) is in CLI.md.
api=$(dirname "$0")/../../lib/api/api.c
sts=$(sed -n '/^static const char \*status_name/,/^}/p' "$api" | sed -n 's/.*return "\([A-Z_]*\)";.*/\1/p')
[[ $(echo "$sts" | wc -w) -ge 8 ]] || fail "the replica statuses of $api: '$sts'"
for st in $sts; do
    grep -q "^| \`$st\` |" "$(dirname "$0")/../../docs/CLI.md" || fail "CLI.md documents the replica status $st"
done

# --version: the tool's name and the library's version, on stdout.
versions=
for tool in "$KVCTL" "$KVD" "$KVBENCH"; do
    name=$(basename "$tool")
    "$tool" --version >"$tmp/out" 2>"$tmp/err"; rc=$?
    expect_rc 0 "$name --version"
    grep -qx "$name [0-9]*\.[0-9]*\.[0-9]*" "$tmp/out" || fail "$name --version prints '$name VERSION'"
    versions+="${versions:+ }$(cut -d' ' -f2 "$tmp/out")"
done
[[ $(echo "$versions" | tr ' ' '\n' | sort -u | wc -l) -eq 1 ]] || fail "one version for the three tools: $versions"
kc get k1 --version;         expect_rc 0 "--version after the command"

# ------------------------------------------------- kvbench --depth
# The asynchronous load: one thread, 4 connections, 8 in flight on each;
# every request answered, the JSON says so, and the CPU per operation of
# kvbench and of the node (--server-pids) is reported.
"$KVBENCH" binary --endpoints "$EP" --connections 4 --depth 8 --keys 500 --requests 4000 \
    --read-ratio 0.5 --server-pids "$kvd_pid" --json >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 0 "kvbench --depth"
python3 - "$tmp/out" <<'PY' || fail "kvbench --depth JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["depth"] == 8 and d["threads"] == 1 and d["connections"] == 4, d
assert d["total"]["ops"] == 4000 and d["errors"] == 0, d["total"]
assert d["preload"]["put"]["ops"] == 500, d["preload"]
assert d["cpu_us_per_op"]["kvbench"] > 0 and d["cpu_us_per_op"]["servers"] > 0, d
PY
"$KVBENCH" binary --endpoints "$EP" --connections 2 --depth 4 --keys 50 --requests 500 \
    --cas-ratio 1 --no-preload --json >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 0 "kvbench --depth with CAS"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["errors"] == 0 and d["operations"]["cas"]["ops"] > 0, d' \
    "$tmp/out" || fail "kvbench --depth CAS: every CAS settled"
# --rate paces the run: 1,000 requests at 2,000 a second, all answered.
"$KVBENCH" binary --endpoints "$EP" --connections 2 --depth 4 --keys 50 --requests 1000 \
    --rate 2000 --no-preload --json >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 0 "kvbench --rate"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["rate"] == 2000 and d["total"]["ops"] == 1000 and d["errors"] == 0, d' \
    "$tmp/out" || fail "kvbench --rate: every paced request answered"
"$KVBENCH" binary --endpoints "$EP" --rate 100 >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 2 "kvbench --rate without --depth"
"$KVBENCH" binary --endpoints "$EP" --depth 4 --threads 3 >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 2 "kvbench --depth with --threads"
"$KVBENCH" http --url "http://127.0.0.1:$hport" --depth 4 >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 2 "kvbench --depth in http mode"
"$KVBENCH" binary --endpoints "$EP" --depth 0 >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 2 "kvbench --depth 0"

# ------------------------------------------------------- endpoint down
down=
for _ in $(seq 20); do
    p=$((20000 + RANDOM % 20001))
    if [[ $p != "$port" ]] && ! listening "$p"; then down=$p; break; fi
done
if [[ -n $down ]]; then
    "$KVCTL" --endpoints "127.0.0.1:$down" --timeout 1000 get k1 >"$tmp/out" 2>"$tmp/err"; rc=$?
    expect_rc 5 "get with nothing listening"
    [[ -s $tmp/err ]] || fail "an unavailable endpoint is reported on stderr"
    grep -q "endpoints tried: 127.0.0.1:$down, from --endpoints; set them with --endpoints or \$KVCTL_ENDPOINTS" "$tmp/err" ||
        fail "no endpoint answering names the endpoints and how to set them"
    KVCTL_ENDPOINTS=127.0.0.1:$down "$KVCTL" --timeout 1000 get k1 >"$tmp/out" 2>"$tmp/err"; rc=$?
    expect_rc 5 "get with nothing listening at \$KVCTL_ENDPOINTS"
    grep -q "endpoints tried: 127.0.0.1:$down, from \$KVCTL_ENDPOINTS" "$tmp/err" ||
        fail "the endpoints' source is named"
    "$KVCTL" --endpoints "127.0.0.1:$down" --timeout 1000 health >"$tmp/out" 2>"$tmp/err"; rc=$?
    expect_rc 5 "health with nothing listening"
    "$KVCTL" --endpoints "127.0.0.1:$down" --timeout 1000 -w json put k v >"$tmp/out" 2>"$tmp/err"; rc=$?
    expect_rc 5 "json put with nothing listening"
    json_check 'd["error"]["code"] in ("UNAVAILABLE", "TIMEOUT")' "json unavailable"
fi
"$KVCTL" --endpoints "no-port-here" get k1 >"$tmp/out" 2>"$tmp/err"; rc=$?
expect_rc 2 "unparsable endpoint"

# ------------------------------------------------ the HTTP port by mistake
# An HTTP server is no libkv node: kvctl says so at once, instead of waiting
# for a frame that never comes and saying "timed out".
if [[ -n $hport ]]; then
    want="127.0.0.1:$hport answered HTTP, not the libkv binary protocol: that is the node's HTTP port; use the binary port (--listen)"
    "$KVCTL" --endpoints "127.0.0.1:$hport" get k1 >"$tmp/out" 2>"$tmp/err"; rc=$?
    expect_rc 5 "get from a node's HTTP port"
    grep -qF "$want" "$tmp/err" || fail "an HTTP port is named as such"
    grep -q "timed out" "$tmp/err" && fail "an HTTP port is not a time-out"
    "$KVCTL" --endpoints "127.0.0.1:$hport" put k1 v >"$tmp/out" 2>"$tmp/err"; rc=$?
    expect_rc 5 "put to a node's HTTP port"
    grep -qF "$want" "$tmp/err" || fail "an HTTP port is named as such (put)"
    grep -q "outcome unknown" "$tmp/err" && fail "a put to an HTTP port is not of unknown outcome"
    "$KVCTL" --endpoints "127.0.0.1:$hport" -w json health >"$tmp/out" 2>"$tmp/err"; rc=$?
    expect_rc 5 "json health on a node's HTTP port"
    json_check 'd["error"]["code"] == "UNAVAILABLE" and "answered HTTP" in d["error"]["message"]' "json HTTP port"
    # Listed first, the HTTP port does not stop kvctl from using the next.
    kc --endpoints "127.0.0.1:$hport,$EP" get k1
    expect 0 "again" "the binary port after an HTTP one"
else
    fail "no http port in the kvd log: $(head -c 400 "$tmp/kvd.log")"
fi

# ------------------------------------- siblings and --context (CLUSTER.md)
# A node alone keeps no causal contexts; one whose own address is its seed
# is a cluster of one, which does. Written under --policy siblings without a
# context, a key gets a sibling per write; a write with the context of a
# read supersedes every sibling that read saw.
kill "$kvd_pid" 2>/dev/null
wait "$kvd_pid" 2>/dev/null
kvd_pid=
rm -rf "$tmp/cdata"
start_kvd "$tmp/kvd-c.log" --data "$tmp/cdata" --node-id kvctl-c1 \
    --seeds "127.0.0.1:@PORT@" --replicas 1
cport=$started_port
if [[ -z $cport ]]; then
    fail "kvd as a cluster of one did not start: $(head -c 400 "$tmp/kvd-c.log")"
else
    EP=127.0.0.1:$cport
    ok=
    for _ in $(seq 100); do # the ring is built once the seed is known; up to ~10 s
        kc --timeout 500 put sib a --policy siblings
        if [[ $rc -eq 0 ]]; then ok=1; break; fi
        sleep 0.1
    done
    [[ -n $ok ]] || fail "put on the cluster of one never succeeded"
    kc put sib b --policy siblings; expect 0 "version 2" "a second write without a context"
    kc -w json get sib --policy siblings; expect_rc 0 "json get of two siblings"
    json_check 'sorted(s["value"] for s in d["siblings"]) == ["a", "b"] and len(d["context"]) > 0' "two siblings and a context"
    ctx=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["context"])' "$tmp/out")
    kc put sib c --policy siblings --context "$ctx"; expect 0 "version 3" "put with the read's context"
    kc -w json get sib --policy siblings; expect_rc 0 "json get after the put with a context"
    json_check 'd["value"] == "c" and "siblings" not in d' "the context resolved the siblings"
    kc put sib d --policy siblings; expect 0 "version 4" "a sibling again"
    kc -w json get sib --policy siblings
    json_check 'len(d["siblings"]) == 2' "two siblings again"
    ctx=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["context"])' "$tmp/out")
    kc del sib --policy siblings --context "$ctx"; expect 0 "version 5" "del with the read's context"
    kc get sib --policy siblings; expect 3 "" "the delete with the context removed both siblings"
fi

# ------------------------------------------- tokens and TLS (SECURITY.md)
# A second kvd with client tokens and a certificate for 127.0.0.1 that a
# CA made here signs.
sec=$tmp/sec
mkdir -p "$sec"
if (cd "$sec" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=test-ca -keyout ca.key -out ca.pem &&
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > ext &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kvd \
        -keyout node.key -out node.csr &&
    openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext -out node.pem) >/dev/null 2>&1; then
    printf '# ops\nsecret-token-1\n' > "$sec/tokens"
    printf 'secret-token-1\n' > "$sec/my.token"
    printf 'wrong-token\n' > "$sec/wrong.token"
    chmod 600 "$sec"/*
    kill "$kvd_pid" 2>/dev/null
    wait "$kvd_pid" 2>/dev/null
    kvd_pid=
    start_kvd "$tmp/kvd-sec.log" --data "$tmp/secdata" --node-id kvctl-sec \
        --client-token-file "$sec/tokens" --tls-cert "$sec/node.pem" --tls-key "$sec/node.key"
    sport=$started_port
    if [[ -z $sport ]]; then
        fail "kvd with tokens and TLS did not start: $(head -c 400 "$tmp/kvd-sec.log")"
    else
        EP=127.0.0.1:$sport
        kc --tls-ca "$sec/ca.pem" put sk v;                       expect_rc 6 "put without a token"
        grep -q "not permitted" "$tmp/err" || fail "the refusal says not permitted"
        kc --tls-ca "$sec/ca.pem" --token-file "$sec/wrong.token" put sk v
        expect_rc 6 "put with a wrong token"
        kc --tls-ca "$sec/ca.pem" --token-file "$sec/my.token" put sk v1
        expect 0 "version 1" "put with the token over TLS"
        KVCTL_TOKEN=secret-token-1 "$KVCTL" --endpoints "$EP" --tls-ca "$sec/ca.pem" get sk \
            >"$tmp/out" 2>"$tmp/err"; rc=$?
        expect 0 "v1" "get with KVCTL_TOKEN over TLS"
        kc --tls-ca "$sec/ca.pem" -w json --token-file "$sec/wrong.token" get sk
        expect_rc 6 "json get with a wrong token"
        json_check 'd["error"]["code"] == "NOT_PERMITTED"' "json not permitted"
        kc --timeout 2000 --token-file "$sec/my.token" get sk
        expect_rc 5 "plain TCP to a TLS node"
        kc --tls --token-file "$sec/my.token" get sk
        expect_rc 6 "TLS checked against the system's CAs (ours is not one)"
        grep -q "certificate" "$tmp/err" || fail "the refusal names the certificate"
    fi
else
    fail "openssl could not make the test certificates"
fi

# ------------------------------------------- a cluster of three (CLUSTER.md)
kill "$kvd_pid" 2>/dev/null
wait "$kvd_pid" 2>/dev/null
kvd_pid=
# Three free ports, then three members; a port can be taken by another
# process between the pick and the listen (another test of the suite), so a
# start where a member exits before all three are ready is tried again on
# new ports (at most 5 times).
for attempt in 1 2 3 4 5; do
    cports=()
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 20001))
        [[ " ${cports[*]} " == *" $p "* ]] && continue
        listening "$p" || cports+=("$p")
        [[ ${#cports[@]} -eq 3 ]] && break
    done
    peers=127.0.0.1:${cports[0]},127.0.0.1:${cports[1]},127.0.0.1:${cports[2]}
    cluster_pids=()
    for i in 0 1 2; do
        rm -rf "$tmp/cl$i"
        "$KVD" --data "$tmp/cl$i" --node-id "cl$i" --listen "127.0.0.1:${cports[$i]}" \
            --peers "$peers" 2>"$tmp/cl$i.log" &
        cluster_pids+=($!)
    done
    started=
    for _ in $(seq 100); do # up to ~10 s for three "ready" lines
        exited=0 ready=0
        for i in 0 1 2; do
            kill -0 "${cluster_pids[$i]}" 2>/dev/null || exited=1
            grep -q '"ready' "$tmp/cl$i.log" 2>/dev/null && ready=$((ready + 1))
        done
        ((exited)) && break
        ((ready == 3)) && { started=1; break; }
        sleep 0.1
    done
    [[ -n $started ]] && break
    for pid in "${cluster_pids[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
done
EP=$peers
ok=
for _ in $(seq 300); do # every member known, the ring built; up to ~30 s
    kc --timeout 1000 --consistency all put ck v1
    if [[ $rc -eq 0 ]]; then ok=1; break; fi
    sleep 0.1
done
if [[ -z $ok ]]; then
    fail "the cluster of three never took a write at ALL: $(for i in 0 1 2; do
        kill -0 "${cluster_pids[$i]}" 2>/dev/null || echo "cl$i exited"; tail -n 4 "$tmp/cl$i.log"; done)"
else
    # Every replica is listed, each line with a status docs/CLI.md explains.
    kc get ck --verbose;        expect_rc 0 "get --verbose in a cluster"
    [[ $(grep -c "^replica cl[0-2]: " "$tmp/out") -eq 3 ]] || fail "get --verbose lists three replicas"
    grep -q "^answers required: 2$" "$tmp/out" || fail "get --verbose says R"
    doc=$(dirname "$0")/../../docs/CLI.md
    for st in $(sed -n 's/^replica cl[0-2]: \([A-Z_]*\) .*/\1/p' "$tmp/out"); do
        grep -q "^| \`$st\` |" "$doc" || fail "CLI.md documents the replica status $st"
    done
    kc -w json get ck --verbose --consistency all; expect_rc 0 "get --verbose -w json in a cluster"
    json_check 'd["required"] == 3 and sorted(r["status"] for r in d["replicas"]) == ["OK", "OK", "OK"]' "three replicas OK at ALL"

    # members asks each member for its own store figures; scan walks the ring.
    kc members;                 expect_rc 0 "members in a cluster"
    [[ $(grep -cE "^cl[0-2] .* [0-9]+ +[0-9.]+ [KMGT]?i?B$" "$tmp/out") -eq 3 ]] ||
        fail "members shows every member's keys and bytes: $(cat "$tmp/out")"
    kc scan --consistency all;  expect 0 "$(printf 'ck\tv1')" "scan of a cluster at ALL"

    # One member down: a write at ALL is refused with the node's reason.
    kill "${cluster_pids[2]}"
    wait "${cluster_pids[2]}" 2>/dev/null
    kc --consistency all put ck v2
    expect_rc 5 "a write at ALL with a member down"
    grep -q "2 of 3 replicas reachable" "$tmp/err" || fail "a write at ALL says how many replicas are reachable"
    grep -q "not applied" "$tmp/err" || fail "a write at ALL says it was not applied"
    kc put ck v3;               expect 0 "version 2" "a write at QUORUM with a member down"
    kc get ck --verbose --consistency all; expect_rc 5 "a read at ALL with a member down"
    grep -q "^replica cl2: UNAVAILABLE (" "$tmp/out" || fail "the member down shows as UNAVAILABLE"

    # Connections that follow no failure (gossip opens one every round) are
    # not an operator's news: none at info.
    for i in 0 1; do
        ! grep -q '"level":"info","msg":"connected to' "$tmp/cl$i.log" ||
            fail "cl$i logs routine connections at info: $(grep -c connected "$tmp/cl$i.log") lines"
    done

    # A member started again alone (no --peers) on its store: kvd says the
    # store remembers the others, and how to start fresh.
    for pid in "${cluster_pids[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    cluster_pids=()
    start_kvd "$tmp/alone.log" --data "$tmp/cl0" --node-id cl0
    if [[ -z $started_port ]]; then
        fail "a member restarted alone did not start: $(head -c 400 "$tmp/alone.log")"
    else
        grep -q "^kvd: warning: started without --peers or --seeds, but $tmp/cl0 remembers 2 other member(s) of its cluster: cl[12] (127.0.0.1:[0-9]*), cl[12] (127.0.0.1:[0-9]*)\.$" "$tmp/alone.log" ||
            fail "kvd alone on a cluster's store says it remembers the members: $(grep kvd: "$tmp/alone.log")"
        grep -q "new, empty --data directory" "$tmp/alone.log" || fail "kvd says how to start fresh"
        grep -q '"level":"warn","msg":"started without peers or seeds, but this store remembers 2 other member(s)' "$tmp/alone.log" ||
            fail "the library logs the remembered members"
    fi
fi

# ----------------------------------------------- the example config file
# examples/kvd.json, its files pointed at this test's (the secret, the
# tokens, the certificates of the TLS section) and its data and addresses
# overridden by flags, starts a node that serves a client with the CA and
# a token.
kill "$kvd_pid" 2>/dev/null
wait "$kvd_pid" 2>/dev/null
kvd_pid=
if [[ -f $sec/node.pem ]]; then
    head -c 32 /dev/urandom | base64 >"$sec/cluster.secret"
    chmod 600 "$sec/cluster.secret"
    python3 - "$root/examples/kvd.json" "$tmp/kvd.json" "$sec" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
sec = sys.argv[3]
c.update(clusterSecretFile=sec + "/cluster.secret", clientTokenFile=sec + "/tokens",
         tlsCert=sec + "/node.pem", tlsKey=sec + "/node.key", tlsCa=sec + "/ca.pem")
json.dump(c, open(sys.argv[2], "w"))
PY
    start_kvd "$tmp/example.log" --config "$tmp/kvd.json" --data "$tmp/exdata" \
        --http 127.0.0.1:0 --seeds "127.0.0.1:@PORT@"
    if [[ -z $started_port ]]; then
        fail "kvd with examples/kvd.json did not start: $(head -c 600 "$tmp/example.log")"
    else
        EP=127.0.0.1:$started_port
        ok=
        for _ in $(seq 100); do # a cluster of one: its ring at once; up to ~10 s
            kc --timeout 1000 --tls-ca "$sec/ca.pem" --token-file "$sec/my.token" put ex v
            if [[ $rc -eq 0 ]]; then ok=1; break; fi
            sleep 0.1
        done
        [[ -n $ok ]] || fail "a node from examples/kvd.json serves: $(cat "$tmp/err")"
    fi
fi

# ------------------------------------------------ the open-files limit
# kvd raises its soft open-files limit to the hard one (services often
# start at 1024, and a node holds a socket per connection), and warns
# when what it got is still low.
kill "$kvd_pid" 2>/dev/null
wait "$kvd_pid" 2>/dev/null
kvd_pid=
printf '#!/bin/sh\nulimit -Sn 256 || exit 1\nexec "%s" "$@"\n' "$KVD" >"$tmp/kvd-low-limit"
chmod +x "$tmp/kvd-low-limit"
KVD=$tmp/kvd-low-limit start_kvd "$tmp/nofile.log" --data "$tmp/nofile" --node-id nofile
if [[ -z $started_port ]]; then
    fail "kvd with a soft limit of 256 open files did not start: $(head -c 600 "$tmp/nofile.log")"
else
    hard=$(ulimit -Hn)
    want=$hard
    [[ $hard == unlimited || $hard -gt 1048576 ]] && want=1048576
    got=$(awk '/^Max open files/ {print $4}' "/proc/$kvd_pid/limits")
    [[ $got == "$want" ]] || fail "kvd raised its open-files limit from 256 to $got, not $want (hard: $hard)"
    if [[ $want -lt 8192 ]]; then
        grep -q '"level":"warn","msg":"open files limited to '"$want" "$tmp/nofile.log" ||
            fail "kvd warns that $want open files is low: $(grep -c warn "$tmp/nofile.log") warnings"
    elif grep -q "open files limited" "$tmp/nofile.log"; then
        fail "kvd warns of its open-files limit at $want"
    fi
fi

if [[ $failures -ne 0 ]]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all kvctl checks passed"
