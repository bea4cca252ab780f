package bot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// DefaultMaxBodyBytes is GitHub's cap on webhook payloads (25 MB); larger
// deliveries are refused with 413.
const DefaultMaxBodyBytes = 25 << 20

// HandlerOptions configures a webhook endpoint.
type HandlerOptions struct {
	// Webhook is the host dialect served by this endpoint.
	Webhook Webhook
	// Enqueuer makes an accepted delivery durable.
	Enqueuer Enqueuer
	// MaxBodyBytes bounds the body; DefaultMaxBodyBytes when zero.
	MaxBodyBytes int64
	// Logger receives one line per refused delivery (debug for accepted).
	Logger *slog.Logger
}

// NewWebhookHandler returns the handler of POST /webhooks/<forge>. It does
// only what must happen before the reply: read a bounded body, authenticate
// it, enqueue one task, and answer — 202 accepted, 200 for pings, ignored
// event types and duplicate deliveries, 400 malformed, 401 unauthenticated,
// 405 wrong method, 413 too large, 503 when the queue is unreachable.
// Everything slow happens in a worker.
func NewWebhookHandler(opts HandlerOptions) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &webhookHandler{opts: opts, forge: opts.Webhook.Forge()}
}

type webhookHandler struct {
	opts  HandlerOptions
	forge string
}

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code, event := h.serve(w, r)
	webhookRequests.WithLabelValues(h.forge, event, strconv.Itoa(code)).Inc()
	webhookDuration.WithLabelValues(h.forge).Observe(time.Since(start).Seconds())
}

// serve answers the request and returns the status code and a bounded
// event label for metrics.
func (h *webhookHandler) serve(w http.ResponseWriter, r *http.Request) (int, string) {
	log := h.opts.Logger
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return reply(w, http.StatusMethodNotAllowed, "use POST"), "invalid"
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		return reply(w, http.StatusRequestEntityTooLarge, "body exceeds "+strconv.FormatInt(h.opts.MaxBodyBytes, 10)+" bytes"), "invalid"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return reply(w, http.StatusRequestEntityTooLarge, "body exceeds "+strconv.FormatInt(h.opts.MaxBodyBytes, 10)+" bytes"), "invalid"
		}
		return reply(w, http.StatusBadRequest, "could not read body"), "invalid"
	}
	if err := h.opts.Webhook.Authenticate(r.Header, body); err != nil {
		log.Warn("webhook refused", "forge", h.forge, "reason", err.Error(), "remote", r.RemoteAddr)
		return reply(w, http.StatusUnauthorized, err.Error()), "unauthenticated"
	}
	delivery, event := h.opts.Webhook.Identify(r.Header, body)
	label := "other"
	if h.opts.Webhook.Handles(event) {
		label = event
	}
	if event == "" {
		return reply(w, http.StatusBadRequest, "missing event type header"), label
	}
	if body, err = payload(r.Header.Get("Content-Type"), body); err != nil {
		return reply(w, http.StatusBadRequest, err.Error()), label
	}
	if !json.Valid(body) {
		return reply(w, http.StatusBadRequest, "body is not valid JSON"), label
	}
	if !h.opts.Webhook.Handles(event) {
		if event == "ping" {
			return reply(w, http.StatusOK, "pong"), "ping"
		}
		log.Debug("webhook event type ignored", "forge", h.forge, "event", event, "delivery", delivery)
		return reply(w, http.StatusOK, "event type "+strconv.Quote(event)+" is ignored"), label
	}
	if pc, ok := h.opts.Webhook.(Prechecker); ok {
		if err := pc.Precheck(event, body); errors.Is(err, ErrIgnoredEvent) {
			log.Debug("webhook delivery ignored", "forge", h.forge, "event", event, "delivery", delivery, "reason", err)
			return reply(w, http.StatusOK, err.Error()), label
		} else if err != nil {
			return reply(w, http.StatusBadRequest, err.Error()), label
		}
	}
	if delivery == "" {
		// Without a delivery id the body itself is the identity, which still
		// catches a proxy that replays the same bytes.
		sum := sha256.Sum256(body)
		delivery = "sha256-" + hex.EncodeToString(sum[:16])
	}
	err = h.opts.Enqueuer.Enqueue(r.Context(), Delivery{Forge: h.forge, ID: delivery, Type: event, Body: body, ReceivedAt: time.Now()})
	switch {
	case err == nil:
		log.Debug("webhook accepted", "forge", h.forge, "event", event, "delivery", delivery)
		return reply(w, http.StatusAccepted, "accepted "+delivery), label
	case errors.Is(err, ErrDuplicateDelivery):
		log.Info("duplicate webhook delivery", "forge", h.forge, "event", event, "delivery", delivery)
		return reply(w, http.StatusOK, "duplicate delivery "+delivery), label
	default:
		log.Error("webhook not queued", "forge", h.forge, "event", event, "delivery", delivery, "err", err)
		w.Header().Set("Retry-After", "5")
		return reply(w, http.StatusServiceUnavailable, "queue unavailable, retry later"), label
	}
}

// payload returns the JSON of a delivery. GitHub may be configured to send
// application/x-www-form-urlencoded bodies with the JSON in "payload"; the
// signature covers the raw body, so this runs after authentication.
func payload(contentType string, body []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errors.New("malformed form body")
	}
	p := vals.Get("payload")
	if p == "" {
		return nil, errors.New(`form body has no "payload" field`)
	}
	return []byte(p), nil
}

func reply(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"message": msg})
	w.Write(append(b, '\n'))
	return code
}
