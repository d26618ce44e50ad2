// The errors of the package: a request the proxy refuses (RequestError), a
// session it could not mint (SessionError, sorted by ErrorKind), and the
// KalturaAPIException in a Kaltura answer (APIError, ParseAPIError).

package kaltura

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// RequestError is a request the proxy refuses. Its message is safe to show
// to the client.
type RequestError struct {
	Code   string // BAD_REQUEST, BODY_TOO_LARGE, UNSUPPORTED
	Status int
	Msg    string
}

// Error returns the message, which is safe to show to the client.
func (e *RequestError) Error() string { return e.Msg }

// badRequest is a RequestError with code BAD_REQUEST and status 400.
func badRequest(format string, a ...any) *RequestError {
	return &RequestError{Code: "BAD_REQUEST", Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, a...)}
}

// ErrorKind sorts session failures by what an operator or client can do.
type ErrorKind int

const (
	// KindUnavailable: Kaltura could not be reached or answered garbage
	// (network error, timeout, HTTP 5xx, malformed body). Retrying later may work.
	KindUnavailable ErrorKind = iota + 1
	// KindConfig: Kaltura rejected the sidecar's credentials or the appToken
	// does not fit a per-user proxy. Retrying does not help until config changes.
	KindConfig
	// KindRejected: Kaltura rejected the request for another reason.
	KindRejected
)

// String names the kind in logs and metrics.
func (k ErrorKind) String() string {
	switch k {
	case KindUnavailable:
		return "unavailable"
	case KindConfig:
		return "config"
	case KindRejected:
		return "rejected"
	}
	return "unknown"
}

// SessionError is returned by StartSession. Its message never contains the
// appToken token or a whole KS.
type SessionError struct {
	Kind   ErrorKind
	Action string // "startWidgetSession" or "startSession"
	Code   string // Kaltura error code, or a local code such as USER_MISMATCH, HTTP_503, NETWORK, TIMEOUT, BAD_RESPONSE
	Hint   string // the likely cause, for the log
	Err    error
}

// Error describes the failure, with its hint.
func (e *SessionError) Error() string {
	msg := "kaltura " + e.Action + " failed: " + e.Code
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *SessionError) Unwrap() error { return e.Err }

// Temporary reports whether a retry may succeed without a config change.
func (e *SessionError) Temporary() bool { return e.Kind == KindUnavailable }

// APIError is a KalturaAPIException.
type APIError struct {
	Code    string
	Message string
	Args    map[string]string
}

// Error returns the code and the message.
func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// ParseAPIError returns the KalturaAPIException in a JSON body, or nil when
// the body is not one. It accepts args as [] or {} and the {"error":{…}}
// wrapper the player also understands.
func ParseAPIError(body []byte) *APIError {
	var e struct {
		Code       json.RawMessage `json:"code"`
		Message    string          `json:"message"`
		ObjectType string          `json:"objectType"`
		Args       json.RawMessage `json:"args"`
		Error      json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return nil
	}
	if e.ObjectType != "KalturaAPIException" {
		if len(e.Error) > 0 {
			return ParseAPIError(e.Error)
		}
		return nil
	}
	out := &APIError{Message: e.Message, Args: map[string]string{}}
	var code any
	_ = json.Unmarshal(e.Code, &code)
	out.Code = looseString(code)
	var args map[string]any
	if json.Unmarshal(e.Args, &args) == nil {
		for k, v := range args {
			out.Args[k] = looseString(v)
		}
	}
	return out
}

// looseString returns a decoded JSON scalar as text: a number in plain
// decimal, null as "".
func looseString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
