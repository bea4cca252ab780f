package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
)

// Ingress is the bot.Enqueuer of the webhook endpoints: it turns a verified
// delivery into one TypeWebhook task. The delivery id is the task id, so a
// redelivery is refused by Redis itself in the same round trip.
type Ingress struct {
	client *asynq.Client
	signer *TaskSigner
	// Durable, when set, is called after a delivery is queued (or found
	// queued already) and before it is acknowledged: an error answers the
	// host 503, so that a delivery a Redis failover could still lose is
	// never acknowledged. With Sentinel it waits for the replicas
	// (store.Store.WaitReplicas).
	Durable func(ctx context.Context) error
}

// NewIngress returns an Ingress enqueueing through client, signing each
// task with signer.
func NewIngress(client *asynq.Client, signer *TaskSigner) *Ingress {
	return &Ingress{client: client, signer: signer}
}

// Task headers of a TypeWebhook task; its payload is the body itself.
const (
	headerForge    = "forge"
	headerDelivery = "delivery"
	headerEvent    = "event"
	headerReceived = "received"
)

// Enqueue implements bot.Enqueuer. The body travels as the task's payload
// as it is (a JSON envelope would base64 it, a third more for Redis to
// store and copy on the hot path) and the rest as task headers.
func (in *Ingress) Enqueue(ctx context.Context, d bot.Delivery) error {
	task := in.signer.NewTaskWithHeaders(TypeWebhook, d.Body, map[string]string{
		headerForge: d.Forge, headerDelivery: d.ID, headerEvent: d.Type,
		headerReceived: d.ReceivedAt.UTC().Format(time.RFC3339Nano),
	})
	_, err := in.client.EnqueueContext(ctx, task,
		asynq.TaskID(d.Forge+":"+d.ID), asynq.Queue(QueueEvents),
		asynq.Retention(webhookRetention), asynq.MaxRetry(20))
	duplicate := errors.Is(err, asynq.ErrTaskIDConflict)
	if err != nil && !duplicate {
		return fmt.Errorf("enqueue delivery %s: %w", d.ID, err)
	}
	// A duplicate is acknowledged too (200), so the first copy must be as
	// safe as a new one.
	if in.Durable != nil {
		if err := in.Durable(ctx); err != nil {
			return fmt.Errorf("delivery %s queued but not yet safe from a failover: %w", d.ID, err)
		}
	}
	if duplicate {
		return bot.ErrDuplicateDelivery
	}
	return nil
}

// deliveryOf reads a TypeWebhook task back into the delivery it carries.
// Tasks queued by versions before headers were used carry a JSON envelope.
func deliveryOf(t *asynq.Task) (bot.Delivery, error) {
	h := t.Headers()
	if h[headerForge] == "" {
		var d bot.Delivery
		err := json.Unmarshal(t.Payload(), &d)
		return d, err
	}
	received, _ := time.Parse(time.RFC3339Nano, h[headerReceived])
	return bot.Delivery{Forge: h[headerForge], ID: h[headerDelivery], Type: h[headerEvent], Body: t.Payload(), ReceivedAt: received}, nil
}
