package ocf

import (
	"errors"
	"fmt"
)

// Status is an OCF exit code.
type Status int

// Exit codes of OCF 1.1 and Pacemaker.
const (
	Success          Status = 0 // running (unpromoted), or the action succeeded
	ErrGeneric       Status = 1
	ErrArgs          Status = 2
	ErrUnimplemented Status = 3
	ErrPerm          Status = 4
	ErrInstalled     Status = 5
	ErrConfigured    Status = 6 // fatal: Pacemaker stops the resource everywhere
	NotRunning       Status = 7 // cleanly stopped; only when sure
	RunningPromoted  Status = 8
	FailedPromoted   Status = 9
	Degraded         Status = 190
	DegradedPromoted Status = 191
)

var statusNames = map[Status]string{
	Success: "OCF_SUCCESS", ErrGeneric: "OCF_ERR_GENERIC", ErrArgs: "OCF_ERR_ARGS",
	ErrUnimplemented: "OCF_ERR_UNIMPLEMENTED", ErrPerm: "OCF_ERR_PERM", ErrInstalled: "OCF_ERR_INSTALLED",
	ErrConfigured: "OCF_ERR_CONFIGURED", NotRunning: "OCF_NOT_RUNNING", RunningPromoted: "OCF_RUNNING_PROMOTED",
	FailedPromoted: "OCF_FAILED_PROMOTED", Degraded: "OCF_DEGRADED", DegradedPromoted: "OCF_DEGRADED_PROMOTED",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("OCF_STATUS_%d", int(s))
}

// Error is an action's failure with the exit code it must produce and the
// reason Pacemaker shows to the user (the ocf-exit-reason line). Reason is
// the whole message, cause included; Err keeps the cause for errors.Is/As.
type Error struct {
	Status Status
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Reason }

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with status and a formatted reason; a %w verb
// wraps the cause.
func Errorf(status Status, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Status: status, Reason: err.Error(), Err: errors.Unwrap(err)}
}

// StatusOf returns the exit code for err: Success for nil, the status of an
// *Error in its chain, else ErrGeneric.
func StatusOf(err error) Status {
	if err == nil {
		return Success
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return ErrGeneric
}
