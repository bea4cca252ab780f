package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	"github.com/prometheus/common/model"
)

// ErrInvalidQuery is wrapped by Run's error when the query can never give a
// number: Prometheus rejects it (bad_data, e.g. a PromQL syntax error), or
// its result is a range vector or a string. It is a configuration error, not
// an outage.
var ErrInvalidQuery = errors.New("invalid query")

// QueryError is an error answer from Prometheus's query API.
type QueryError struct {
	// Status is the HTTP status code.
	Status int
	// Type is Prometheus's errorType (bad_data, execution, timeout, ...),
	// or "" when the answer was not Prometheus's JSON.
	Type string
	Msg  string
}

func (e *QueryError) Error() string {
	if e.Type == "" {
		return fmt.Sprintf("prometheus answered %d: %s", e.Status, e.Msg)
	}
	return fmt.Sprintf("prometheus: %s: %s", e.Type, e.Msg)
}

// Is makes a bad_data answer match ErrInvalidQuery.
func (e *QueryError) Is(target error) bool {
	return target == ErrInvalidQuery && e.Type == "bad_data"
}

// apiResponse is the envelope of Prometheus's HTTP API answers.
type apiResponse struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

// query runs an instant query (POST /api/v1/query) evaluated at at. Only
// scalar and vector results are decoded; a matrix or string result comes
// back as a value of that type with no content, for the caller to reject.
func query(ctx context.Context, c api.Client, q string, at time.Time) (model.Value, error) {
	u := c.URL("/api/v1/query", nil)
	form := url.Values{}
	form.Set("query", q)
	form.Set("time", strconv.FormatFloat(float64(at.UnixNano())/1e9, 'f', -1, 64))
	req, err := http.NewRequest(http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body, err := c.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	var r apiResponse
	if jerr := json.Unmarshal(body, &r); jerr != nil {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if resp.StatusCode/100 == 2 {
			return nil, fmt.Errorf("prometheus: undecodable answer: %v", jerr)
		}
		return nil, &QueryError{Status: resp.StatusCode, Msg: msg}
	}
	if r.Status != "success" {
		return nil, &QueryError{Status: resp.StatusCode, Type: r.ErrorType, Msg: r.Error}
	}
	switch r.Data.ResultType {
	case "scalar":
		var s model.Scalar
		if err := json.Unmarshal(r.Data.Result, &s); err != nil {
			return nil, fmt.Errorf("prometheus: decoding scalar: %w", err)
		}
		return &s, nil
	case "vector":
		var v model.Vector
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, fmt.Errorf("prometheus: decoding vector: %w", err)
		}
		return v, nil
	case "matrix":
		return model.Matrix{}, nil
	case "string":
		return &model.String{}, nil
	default:
		return nil, fmt.Errorf("prometheus: unknown result type %q", r.Data.ResultType)
	}
}
