package bot

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Webhook is one host's webhook dialect: how a delivery is authenticated,
// identified and normalised. bot/github and bot/gitlab implement it.
type Webhook interface {
	// Forge is the host package's name ("github", "gitlab").
	Forge() string
	// Authenticate checks the request's signature or token against body in
	// constant time. It returns ErrUnauthenticated (wrapped) on a mismatch.
	Authenticate(h http.Header, body []byte) error
	// Identify returns the delivery id used for deduplication (empty when
	// the host sent none) and the host's event type name.
	Identify(h http.Header, body []byte) (delivery, eventType string)
	// Handles reports whether mlbot routes this event type at all; other
	// types are answered 200 and dropped without touching Redis. Ping-like
	// events report false as well.
	Handles(eventType string) bool
	// Parse normalises a delivery body. It runs in a worker, not in the
	// HTTP handler. Events mlbot does not route come back with KindOther.
	Parse(eventType string, body []byte) (*Event, error)
}

// Prechecker is implemented by a Webhook whose event type alone does not
// tell whether a delivery is routable (GitLab's System Hook carries every
// kind of event). The handler calls Precheck after authenticating a valid
// JSON body: an error wrapping ErrIgnoredEvent is answered 200 and dropped,
// any other error 400.
type Prechecker interface {
	Precheck(eventType string, body []byte) error
}

// ErrIgnoredEvent marks a delivery mlbot recognises and deliberately drops.
var ErrIgnoredEvent = errors.New("event is not routed by mlbot")

// ErrUnauthenticated is wrapped by Webhook.Authenticate failures.
var ErrUnauthenticated = errors.New("webhook signature or token does not match")

// ErrDuplicateDelivery is returned by an Enqueuer that has seen the delivery
// id before; the handler answers 200 and enqueues nothing.
var ErrDuplicateDelivery = errors.New("duplicate delivery")

// Delivery is an authenticated webhook body waiting to be routed.
type Delivery struct {
	Forge      string    `json:"forge"`
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Body       []byte    `json:"body"`
	ReceivedAt time.Time `json:"received_at"`
}

// Enqueuer persists a delivery for a worker. It must not return before the
// delivery is durable (in Redis), and must return ErrDuplicateDelivery for
// a delivery id it already holds.
type Enqueuer interface {
	Enqueue(ctx context.Context, d Delivery) error
}
