package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
)

// Ingress is the bot.Enqueuer of the webhook endpoints: it turns a verified
// delivery into one TypeWebhook task. The delivery id is the task id, so a
// redelivery is refused by Redis itself in the same round trip.
type Ingress struct {
	client *asynq.Client
}

// NewIngress returns an Ingress enqueueing through client.
func NewIngress(client *asynq.Client) *Ingress { return &Ingress{client: client} }

// Enqueue implements bot.Enqueuer.
func (in *Ingress) Enqueue(ctx context.Context, d bot.Delivery) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = in.client.EnqueueContext(ctx, asynq.NewTask(TypeWebhook, b),
		asynq.TaskID(d.Forge+":"+d.ID), asynq.Queue(QueueEvents),
		asynq.Retention(webhookRetention), asynq.MaxRetry(20))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return bot.ErrDuplicateDelivery
	}
	if err != nil {
		return fmt.Errorf("enqueue delivery %s: %w", d.ID, err)
	}
	return nil
}
