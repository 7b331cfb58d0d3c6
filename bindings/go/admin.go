package kv

// Administration: backups, repairs and topology changes (kv_backup,
// kv_repair, kv_topology_change in include/kv/kv.h). Each C call gives a
// JSON report, owned by the caller; the wrapper (gokv_admin) copies it and
// releases the library's string, and it is parsed here into a struct. The
// report's text is kept too (Raw), so that fields a newer library adds are
// not lost.

/*
#include <stdlib.h>
#include "gokv.h"
*/
import "C"

import (
	"context"
	"encoding/json"
)

const (
	adminBackup   = 0
	adminRepair   = 1
	adminTopology = 2
)

// BackupReport is the report of Backup (kv_backup): the directory, and one
// entry per snapshot taken or attempted.
type BackupReport struct {
	Dir   string       `json:"dir"`   // the directory asked for, without trailing slashes
	Nodes []BackupNode `json:"nodes"` // one per store: the embedded store, the node, or each member
	Raw   []byte       `json:"-"`     // the report as the library gave it (JSON)
}

// BackupNode is one store's entry in a BackupReport.
type BackupNode struct {
	// NodeID is the node snapshotted; "" for an embedded store (and for a
	// member whose id is unknown).
	NodeID string `json:"nodeId"`
	// Status is "OK", or the name of the failure's status code
	// ("UNAVAILABLE", "INVALID", ...), with Message saying why.
	Status        string `json:"status"`
	Message       string `json:"message,omitempty"`
	Path          string `json:"path"`          // the snapshot's directory on that node's machine
	Bytes         uint64 `json:"bytes"`         // its size, hard-linked files counted
	EstimatedKeys uint64 `json:"estimatedKeys"` // an estimate of the keys it holds
}

// RepairReport is the report of Repair (kv_repair): one entry per node
// asked to start an anti-entropy round.
type RepairReport struct {
	Nodes []RepairNode `json:"nodes"`
	Raw   []byte       `json:"-"` // the report as the library gave it (JSON)
}

// RepairNode is one node's entry in a RepairReport.
type RepairNode struct {
	// NodeID is the node asked; "" for a node handle's own round (the
	// library names none there) and for a member whose id is unknown.
	NodeID  string `json:"nodeId"`
	Status  string `json:"status"`            // "OK", or the failure's status name
	Message string `json:"message,omitempty"` // why it failed
	// Round is the anti-entropy round the node started (or joined); follow
	// it in the node's cluster description ("antiEntropy" -> "round").
	Round uint64 `json:"round"`
}

// Change is a topology change for TopologyChange.
type Change string

const (
	// ChangeLeave decommissions a member (nodetool decommission): its
	// ranges stream to their new homes, then it is left; stop it then.
	ChangeLeave Change = "leave"
	// ChangeRemove removes a member that is down for good (nodetool
	// removenode): the others stream its ranges from surviving replicas.
	ChangeRemove Change = "remove"
	// ChangeAbort undoes the change in progress.
	ChangeAbort Change = "abort"
	// ChangeCleanup is no change of the record: the node drops the data of
	// the token ranges it is no home of (nodetool cleanup).
	ChangeCleanup Change = "cleanup"
)

// TopologyReport is the answer of TopologyChange. For leave, remove and
// abort it is the topology record that holds the change: Epoch and
// Operation (nil when no change is in progress any more). For cleanup it
// is what the node dropped: NodeID, Epoch, Ranges, KeysBefore, KeysAfter.
type TopologyReport struct {
	Epoch     uint64             `json:"epoch"`
	Operation *TopologyOperation `json:"operation"`

	NodeID     string `json:"nodeId"`     // cleanup: the node that cleaned up
	Ranges     uint64 `json:"ranges"`     // cleanup: token ranges dropped
	KeysBefore uint64 `json:"keysBefore"` // cleanup: keys (as its digest counts them) before
	KeysAfter  uint64 `json:"keysAfter"`  // cleanup: and after

	Raw []byte `json:"-"` // the answer as the library gave it (JSON)
}

// TopologyOperation is the change a topology record holds.
type TopologyOperation struct {
	Kind       string `json:"kind"`       // "leave", "remove", "join", "replace"
	Member     string `json:"member"`     // the member that changes
	SinceEpoch uint64 `json:"sinceEpoch"` // the epoch that recorded it
}

// admin runs one of the calls that give a JSON report and unmarshals the
// report into out (and its text into raw). It returns whether a report came
// and was parsed: the library gives one with some failures too.
func (db *DB) admin(ctx context.Context, op string, which C.int, a, b string, out interface{}, raw *[]byte) (bool, error) {
	// Set by the call; read only once it has returned (a call abandoned when
	// its context ended goes on in the background).
	var text []byte
	err := db.run(ctx, op, true, func(p *C.kv) error {
		var m cmem
		defer m.free()
		var ca, cb *C.char
		switch which {
		case adminBackup:
			ca = m.str(a)
		case adminRepair:
			ca = m.strOrNil(a) // "": every member
		default:
			ca = m.str(a)
			cb = m.strOrNil(b) // "": as the call says (NULL)
		}
		res := C.gokv_admin(p, which, ca, cb)
		var e *Error
		if res.rc != 0 {
			e = newError(op, res.rc, res.detail)
		}
		if res.trace != nil {
			text = []byte(takeString(res.trace))
		}
		if e != nil {
			return e
		}
		return nil
	})
	if e, isErr := err.(*Error); isErr && e.cause != nil {
		return false, err // abandoned (or never started): no report to read
	}
	if text == nil {
		return false, err
	}
	if jerr := json.Unmarshal(text, out); jerr != nil {
		if err == nil {
			err = &Error{Op: op, Code: codeIO, Detail: "malformed report: " + jerr.Error(), Index: -1}
		}
		return false, err
	}
	*raw = text
	return true, err
}

// Backup takes a consistent snapshot (kv_backup) into dir, an absolute path
// that must not exist yet (missing parents are created): of the store
// (embedded), of the node's own store (node), or of every member of the
// cluster (client: each into dir/<node-id>, on its own machine). A snapshot
// opens with Open as a store of its own; kvd --restore-from copies it into a
// node's data directory.
//
// The report comes back whatever the outcome when the library gave one
// (a failed member is named in it, and in the error); nil otherwise.
// Errors: ErrInvalid (a relative, empty or too long dir, or the snapshot's
// directory exists), ErrIO, and on clients those of a round trip
// (ErrUnavailable, ErrTimeout, ErrUnknownOutcome, ErrPermission) or the
// first failing member's. A context that ends while a node or client waits
// gives ErrUnknownOutcome: the snapshots may still be taken.
func (db *DB) Backup(ctx context.Context, dir string) (*BackupReport, error) {
	const op = "backup"
	if err := noNUL(op, "dir", dir); err != nil {
		return nil, err
	}
	r := new(BackupReport)
	got, err := db.admin(ctx, op, adminBackup, dir, "", r, &r.Raw)
	if !got {
		r = nil
	}
	return r, err
}

// Repair starts an anti-entropy repair round now (kv_repair, as nodetool
// repair): on a client, on every member, or only on nodeID when it is not
// ""; on a node, on the node itself (nodeID is ignored). The call only
// starts the rounds; the report says which round each node started or
// joined, and comes back whatever the outcome when the library gave one.
// Errors: ErrNotSupported (an embedded store, a node that is not in a
// cluster), ErrInvalid (no member nodeID), those of a round trip, or the
// first failing node's (named in the error).
func (db *DB) Repair(ctx context.Context, nodeID string) (*RepairReport, error) {
	const op = "repair"
	if err := noNUL(op, "node ID", nodeID); err != nil {
		return nil, err
	}
	r := new(RepairReport)
	got, err := db.admin(ctx, op, adminRepair, nodeID, "", r, &r.Raw)
	if !got {
		r = nil
	}
	return r, err
}

// TopologyChange changes the cluster's shape, one change at a time
// (kv_topology_change; docs/CLUSTER.md, "Changing the cluster"): change is
// ChangeLeave (nodeID, or when "" the node this handle is or reaches),
// ChangeRemove (nodeID, required: a member down for good), ChangeAbort
// (nodeID ""), or ChangeCleanup (the node this handle is or reaches; nodeID,
// when given, must be its id). The change is recorded, then runs on its own:
// follow it with Describe. On a node or a client only.
//
// Errors: ErrBusy (another change is in progress: the error's detail names
// it; for cleanup, any change in progress), ErrInvalid (an unknown change,
// no such member, one in the wrong state, a leave that would leave fewer
// members than replicas), ErrUnavailable (too few members answered, a
// leaving member that is down, etcd unreachable), ErrNotSupported (an
// embedded store, a node alone), and those of a round trip. A context that
// ends while the call waits gives ErrUnknownOutcome: the change may still
// be recorded.
func (db *DB) TopologyChange(ctx context.Context, change Change, nodeID string) (*TopologyReport, error) {
	const op = "topology change"
	if err := noNUL(op, "change", string(change)); err != nil {
		return nil, err
	}
	if err := noNUL(op, "node ID", nodeID); err != nil {
		return nil, err
	}
	r := new(TopologyReport)
	got, err := db.admin(ctx, op, adminTopology, string(change), nodeID, r, &r.Raw)
	if !got {
		r = nil
	}
	return r, err
}
