package store

import "github.com/redis/go-redis/v9"

// UniversalClient is a connection to Redis as the Store, and asynq beside
// it, use it: a single server, a sentinel failover or a cluster.
type UniversalClient = redis.UniversalClient

// Client is a connection to a single Redis server.
type Client = redis.Client

// Dial returns a client of the Redis that url names (redis://, rediss://
// or unix://), without connecting yet.
func Dial(url string) (*Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opt), nil
}

// DialAddr returns a client of the Redis at addr (host:port) that requires
// password, without connecting yet.
func DialAddr(addr, password string) *Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: password})
}
