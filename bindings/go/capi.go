package kv

// The cgo layer. Each data call goes through one small C wrapper below that
// makes the libkv call and, when it fails, copies kv_error_last() before it
// returns: the detail is per OS thread and valid only until the next libkv
// call on that thread, and a single cgo call runs on one thread from start
// to end, so the copy is always the failing call's own message (the same
// guarantee runtime.LockOSThread around two cgo calls would give, at the
// cost of one cgo call instead of three). Results come back by value in a
// struct, so no Go pointer is passed for out-parameters (nothing escapes to
// the heap, and GODEBUG=cgocheck=2 has nothing to object to).

/*
#cgo pkg-config: kv
#include <stdlib.h>
#include "gokv.h"
*/
import "C"

import "unsafe"

// ptr is the address of b's first byte, or nil for an empty slice (libkv
// accepts NULL with a zero length). b's memory holds no Go pointers.
func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// takeDetail converts and frees the detail a wrapper copied.
func takeDetail(d *C.char) string {
	if d == nil {
		return ""
	}
	s := C.GoString(d)
	C.free(unsafe.Pointer(d))
	return s
}

// takeString converts and frees a string a wrapper strdup'ed.
func takeString(s *C.char) string { return takeDetail(s) }

// Version returns the version of the libkv library loaded at run time
// (kv_version), such as "0.1.0".
func Version() string { return C.GoString(C.kv_version(nil, nil, nil)) }

// StatusText returns libkv's short static description of a status code
// (kv_strerror).
func StatusText(code int) string { return C.GoString(C.kv_strerror(C.int(code))) }

// cgoNoop is a trivial C call, to measure the cost of crossing into C.
func cgoNoop(x int) int { return int(C.gokv_noop(C.int(x))) }
