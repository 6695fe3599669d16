# Flowgate: the two commands a newcomer needs are `make run` and `make test`.

GO      ?= go
BIN     ?= bin
DIST    ?= dist
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 20s

.PHONY: build run test bench bench-smoke lint cross fuzz chaos clean

build: ## build flowgate and flowgate-sim for this machine into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/flowgate ./gateway/cmd/flowgate
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/flowgate-sim ./firmware-sim/cmd/flowgate-sim

run: build ## the whole job on this machine: gateway, flowgate-sim's facility scenario, stand-in cloud (Ctrl-C stops)
	$(BIN)/flowgate demo -c configs/demo.yaml   # runs flowgate-sim's facility scenario in-process (firmware-sim.Runner)

test: ## every test, with the race detector; needs mosquitto (apt-get install mosquitto)
	$(GO) test -race -count=1 ./...

bench: build ## benchmarks at full size (about 15 minutes: 1 M event backlogs, then mosquitto, mochi alone and flowgate side by side); figures go into BENCHMARKS.md
	@mkdir -p $(BIN)
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 -timeout=60m ./... | tee $(BIN)/gobench.txt
	@! grep -q '^FAIL' $(BIN)/gobench.txt || { echo "a benchmark failed"; exit 1; }
	FLOWGATE_BACKLOG_TEST=1 $(GO) test -count=1 -timeout=10m -run='^TestStartWithBacklog$$' -v ./gateway/cmd/flowgate/
	$(BIN)/flowgate-sim bench -flowgate $(BIN)/flowgate -config configs/bench/flowgate.yaml -gobench $(BIN)/gobench.txt -profile $(BIN)/profiles

bench-smoke: build ## the side-by-side harness in a few seconds (proves it works, not the speed; make test runs it too)
	$(BIN)/flowgate-sim bench -short -flowgate $(BIN)/flowgate -config configs/bench/flowgate.yaml

lint: ## gofmt and go vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fuzz: ## a short run of every fuzz test
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./gateway/config/yamlpos/
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./gateway/config/
	$(GO) test -run='^$$' -fuzz=FuzzNormalize -fuzztime=$(FUZZTIME) ./devices/
	$(GO) test -run='^$$' -fuzz='^FuzzProfileJSON$$' -fuzztime=$(FUZZTIME) ./devices/
	$(GO) test -run='^$$' -fuzz='^FuzzProfileCSV$$' -fuzztime=$(FUZZTIME) ./devices/
	$(GO) test -run='^$$' -fuzz='^FuzzProfileNumber$$' -fuzztime=$(FUZZTIME) ./devices/
	$(GO) test -run='^$$' -fuzz='^FuzzCatalogValidate$$' -fuzztime=$(FUZZTIME) ./devices/
	$(GO) test -run='^$$' -fuzz=FuzzByteSize -fuzztime=$(FUZZTIME) ./gateway/config/
	$(GO) test -run='^$$' -fuzz=FuzzParseCRL -fuzztime=$(FUZZTIME) ./gateway/brokertls/
	$(GO) test -run='^$$' -fuzz=FuzzReceiver -fuzztime=$(FUZZTIME) ./sensors/gps/
	$(GO) test -run='^$$' -fuzz=FuzzParseTrack -fuzztime=$(FUZZTIME) ./sensors/sim/
	for f in FuzzParseRules FuzzFilter FuzzQuickFilter FuzzLookup FuzzRestore; do \
		$(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) ./rules/ || exit 1; done
	for f in FuzzParseStamp FuzzProcFiles; do \
		$(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) ./firmware-sim/load/ || exit 1; done
	$(GO) test -run='^$$' -fuzz='^FuzzReadPackets$$' -fuzztime=$(FUZZTIME) ./firmware-sim/internal/mqtt311/
	$(GO) test -run='^$$' -fuzz='^FuzzParseGoBench$$' -fuzztime=$(FUZZTIME) ./firmware-sim/bench/
	$(GO) test -run='^$$' -fuzz=FuzzReadTruth -fuzztime=$(FUZZTIME) ./firmware-sim/
	for f in FuzzStoreRecords FuzzMeta FuzzParseLog FuzzParseKey FuzzParseValue FuzzTopic FuzzCheckPublish FuzzReadJournal FuzzEncode; do \
		$(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) ./uplink/ || exit 1; done

cross: ## static binaries for Raspberry Pis: arm64 (Pi 3/4/5), armv7 (Pi 2/3), armv6 (Pi Zero/1)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/flowgate-linux-arm64 ./gateway/cmd/flowgate
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/flowgate-linux-armv7 ./gateway/cmd/flowgate
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/flowgate-linux-armv6 ./gateway/cmd/flowgate
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/flowgate-linux-amd64 ./gateway/cmd/flowgate

chaos: ## the long fault-injection run: 200 cycles of cloud outages and kill -9 (the short one is in make test)
	FLOWGATE_CHAOS_CYCLES=200 $(GO) test -count=1 -timeout 60m -run TestChaos -v ./gateway/cmd/flowgate/

clean:
	rm -rf $(BIN) $(DIST) .flowgate
