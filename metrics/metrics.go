// Package metrics exports a lodge host's containers to Prometheus: a
// collector that reads every container's usage from the kernel at scrape
// time (manager.Usage; nothing polls between scrapes), histograms of
// checkpoint and migration durations fed by the caller, and the serving
// process's own Go and process metrics. `lodge serve --metrics ADDR`
// serves them over plain, unauthenticated HTTP.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"lodge/manager"
)

// UsageSource reports the containers' usage; *manager.Manager is one.
type UsageSource interface {
	Usage() ([]manager.Usage, error)
}

// Metrics is a registry with lodge's metrics.
type Metrics struct {
	registry   *prometheus.Registry
	checkpoint prometheus.Histogram
	migration  *prometheus.HistogramVec
}

// Buckets of the duration histograms, in seconds: a checkpoint of a small
// container takes a fraction of a second, a migration of a large one
// minutes.
var durationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// New returns the metrics of the containers src reports, of checkpoints
// and migrations as ObserveCheckpoint and ObserveMigration record them,
// and of this process.
func New(src UsageSource) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		checkpoint: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lodge_checkpoint_duration_seconds",
			Help:    "Time a checkpoint of a running container took (CRIU dump included).",
			Buckets: durationBuckets,
		}),
		migration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lodge_migration_duration_seconds",
			Help:    "Time a migration took, from its start to its commit, by direction (out: sent from here, in: received).",
			Buckets: durationBuckets,
		}, []string{"direction"}),
	}
	m.registry.MustRegister(
		newContainerCollector(src),
		m.checkpoint, m.migration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Migration directions, the values of lodge_migration_duration_seconds's
// direction label.
const (
	DirectionIn  = "in"
	DirectionOut = "out"
)

// ObserveCheckpoint records the duration of one checkpoint.
func (m *Metrics) ObserveCheckpoint(d time.Duration) { m.checkpoint.Observe(d.Seconds()) }

// ObserveMigration records the duration of one migration in direction
// (DirectionIn or DirectionOut).
func (m *Metrics) ObserveMigration(direction string, d time.Duration) {
	m.migration.WithLabelValues(direction).Observe(d.Seconds())
}

// Handler serves the metrics in Prometheus's exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		// A scrape that fails for one container still reports the others.
		ErrorHandling: promhttp.ContinueOnError,
		// Each scrape reads every container's files: a burst of them
		// (several Prometheus servers, a loop of curl) is answered 503
		// beyond this many at once rather than piling up.
		MaxRequestsInFlight: 4,
	})
}

// Serve serves the metrics on ln at /metrics until ctx ends.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "lodge serves its metrics at /metrics", http.StatusNotFound)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
