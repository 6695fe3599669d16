package gateway

import (
	"context"
	"sync"
)

// startSensors starts the sensors wired to the gateway, each under its
// supervisor. (Placeholder: the sensors issue fills this in.)
func (g *Gateway) startSensors(ctx context.Context, wg *sync.WaitGroup) error { return nil }

// stopSensors stops every sensor and waits for them.
func (g *Gateway) stopSensors(ctx context.Context) error { return nil }
