package gateway

import (
	"fmt"
	"net/http"
)

// CatalogTopic is the well-known local topic the event catalog is
// published on, retained, so that a consumer that subscribes at any time
// finds every event type and its schema without asking anyone. A device
// reads it only if its subscribe list allows the topic.
const CatalogTopic = "flowgate/catalog"

// publishCatalog publishes the catalog (the same JSON as GET /api/catalog)
// retained on CatalogTopic. It does nothing without a catalog_file. Call
// it once the broker serves.
func (g *Gateway) publishCatalog() error {
	cat := g.cfg.Library.Catalog
	if cat == nil {
		return nil
	}
	if err := g.broker.Publish(CatalogTopic, cat.JSON(), true, 1); err != nil {
		return fmt.Errorf("gateway: publish catalog on %s: %w", CatalogTopic, err)
	}
	return nil
}

// handleCatalog serves the event catalog for discovery: every event type
// with its schema, version, topic, SLA, owner, publishers and subscribers.
// A catalog holds no secrets. Without a catalog_file it is 404.
func (g *Gateway) handleCatalog(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	cat := g.cfg.Library.Catalog
	if cat == nil {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"no catalog_file is configured"}` + "\n"))
		return
	}
	_, _ = w.Write(cat.JSON())
}
