package kv

/*
#include "gokv.h"
*/
import "C"

import (
	"errors"
	"fmt"
)

// Sentinel errors, one per libkv status code. Every error a call returns is
// an *Error; test it with errors.Is(err, kv.ErrNotFound) and read its
// details with errors.As(err, &kvErr).
var (
	ErrNotFound       = errors.New("kv: not found")                       // KV_ENOTFOUND
	ErrConflict       = errors.New("kv: version conflict")                // KV_ECONFLICT
	ErrTooBig         = errors.New("kv: too big")                         // KV_ETOOBIG
	ErrInvalid        = errors.New("kv: invalid argument")                // KV_EINVAL
	ErrTimeout        = errors.New("kv: timed out")                       // KV_ETIMEDOUT
	ErrUnavailable    = errors.New("kv: unavailable")                     // KV_EUNAVAILABLE
	ErrUnknownOutcome = errors.New("kv: unknown outcome")                 // KV_EUNKNOWN_OUTCOME
	ErrCorrupt        = errors.New("kv: corrupt record")                  // KV_ECORRUPT
	ErrIO             = errors.New("kv: I/O error")                       // KV_EIO
	ErrClosed         = errors.New("kv: closed")                          // KV_ECLOSED, and calls after Close
	ErrNoMemory       = errors.New("kv: out of memory")                   // KV_ENOMEM (also "server busy")
	ErrNotSupported   = errors.New("kv: not supported by this handle")    // KV_ENOTSUP
	ErrBusy           = errors.New("kv: busy (locked or address in use)") // KV_EBUSY
	ErrPermission     = errors.New("kv: permission denied")               // KV_EPERM
)

// Status codes of the C API (include/kv/common.h); Error.Code holds one.
const (
	codeNotFound       = int(C.KV_ENOTFOUND)
	codeConflict       = int(C.KV_ECONFLICT)
	codeTooBig         = int(C.KV_ETOOBIG)
	codeInvalid        = int(C.KV_EINVAL)
	codeTimeout        = int(C.KV_ETIMEDOUT)
	codeUnavailable    = int(C.KV_EUNAVAILABLE)
	codeUnknownOutcome = int(C.KV_EUNKNOWN_OUTCOME)
	codeClosed         = int(C.KV_ECLOSED)
	codeIO             = int(C.KV_EIO)
)

var sentinels = map[int]error{
	int(C.KV_ENOTFOUND):        ErrNotFound,
	int(C.KV_ECONFLICT):        ErrConflict,
	int(C.KV_ETOOBIG):          ErrTooBig,
	int(C.KV_EINVAL):           ErrInvalid,
	int(C.KV_ETIMEDOUT):        ErrTimeout,
	int(C.KV_EUNAVAILABLE):     ErrUnavailable,
	int(C.KV_EUNKNOWN_OUTCOME): ErrUnknownOutcome,
	int(C.KV_ECORRUPT):         ErrCorrupt,
	int(C.KV_EIO):              ErrIO,
	int(C.KV_ECLOSED):          ErrClosed,
	int(C.KV_ENOMEM):           ErrNoMemory,
	int(C.KV_ENOTSUP):          ErrNotSupported,
	int(C.KV_EBUSY):            ErrBusy,
	int(C.KV_EPERM):            ErrPermission,
}

// Error is the error of a failed call.
type Error struct {
	Op     string // the call: "get", "put", "open", ...
	Code   int    // the libkv status code (negative), as in include/kv/common.h
	Detail string // the library's message for this failure (kv_error_last), may be ""
	// Version is, for ErrConflict from CAS, the key's current version (0 when
	// the key is absent).
	Version uint64
	// Index is, when a whole batch was refused, the operation at fault; -1
	// otherwise.
	Index int
	// cause is a context's error when the call was abandoned because its
	// context was done (errors.Is(err, context.DeadlineExceeded) holds).
	cause error
}

func (e *Error) Error() string {
	s := "kv: " + e.Op + ": " + StatusText(e.Code)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if e.Index >= 0 {
		s += fmt.Sprintf(" [operation %d]", e.Index)
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap returns the sentinel of the error's code (ErrNotFound, ...).
func (e *Error) Unwrap() error { return sentinels[e.Code] }

// Is reports whether target is the sentinel of the error's code or, for a
// call abandoned when its context was done, the context's error.
func (e *Error) Is(target error) bool {
	if s, ok := sentinels[e.Code]; ok && s == target {
		return true
	}
	return e.cause != nil && errors.Is(e.cause, target)
}

// Retryable reports whether err says that nothing was changed and the same
// call may be retried as it is (ErrUnavailable, ErrTimeout). An
// ErrUnknownOutcome write may have applied: read before writing again.
func Retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout)
}

func newError(op string, code C.int, detail *C.char) *Error {
	return &Error{Op: op, Code: int(code), Detail: takeDetail(detail), Index: -1}
}

func invalid(op, format string, args ...interface{}) *Error {
	return &Error{Op: op, Code: codeInvalid, Detail: fmt.Sprintf(format, args...), Index: -1}
}

func closedError(op string) *Error {
	return &Error{Op: op, Code: codeClosed, Detail: "the handle is closed", Index: -1}
}
